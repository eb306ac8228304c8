"""``jotr eval --checkpoint CKPT [--config CONFIG] [--set key=value] [--dataset NAME[:SPLIT][=ROOT] ...]``.

Without ``--config`` the checkpoint's own config is used (with ``--set`` overrides, e.g. new data paths). The
network always comes from the checkpoint. Writes metrics.json / .csv, per-joint and per-visibility tables and
plots to ``--out`` (default ``eval.out_dir``) and prints the table. Works under torchrun (sharded, each sample
counted once). The output folder is checked before any work; a network that predicts NaN/inf is reported
(its metrics are NaN) and the exit status is 1. ``--image constant`` / ``--withhold-limbs`` perturb the
inputs; ``--image-dependence`` adds the table normal / image removed / limbs withheld with the error on the
withheld joints (:mod:`jotr.evaluation.perturb`). Library entry point:
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
    p.add_argument(
        "--image",
        choices=("real", "constant"),
        default="real",
        help="'constant': replace every crop by mid-grey (does the network use the image?)",
    )
    p.add_argument(
        "--withhold-limbs",
        type=int,
        default=0,
        metavar="K",
        help="withhold the input keypoints of K of the 4 limbs (arm: shoulder/elbow/wrist/hand, leg: "
        "hip/knee/ankle/foot) of every person, drawn per person from --limb-seed (default 0 = none)",
    )
    p.add_argument("--limb-seed", type=int, default=0, help="seed of the per-person limb draw")
    p.add_argument(
        "--image-dependence",
        action="store_true",
        help="also evaluate with the image removed and with limbs withheld (K of --withhold-limbs, "
        "default 2) and print the table normal / image removed / limbs withheld",
    )


def run(args: argparse.Namespace) -> int:
    from jotr.errors import InputError
    from jotr.evaluation.perturb import InputPerturbation

    if not 0 <= args.withhold_limbs <= 4:
        raise InputError(f"--withhold-limbs must be 0..4 (limbs of a person), got {args.withhold_limbs}")
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
    perturbation = InputPerturbation(
        image=args.image,
        withhold_limbs=args.withhold_limbs > 0,
        num_limbs=args.withhold_limbs or 2,
        seed=args.limb_seed,
    )
    result = evaluate(
        cfg,
        args.checkpoint,
        args.dataset or None,
        out_dir=args.out,
        perturbation=perturbation,
        with_image_dependence=args.image_dependence,
    )
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
