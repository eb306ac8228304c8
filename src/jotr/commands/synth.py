"""``jotr synth``: generate a synthetic occluded-people split (docs/synthetic_format.md)."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jotr.synth.scene import FAMILIES

    p.add_argument(
        "--split",
        required=True,
        choices=FAMILIES,
        help="family: none (no occlusion), oc (objects), pc (1-2 other people), crowd",
    )
    p.add_argument("--num", type=int, default=100, help="number of images (default 100)")
    p.add_argument("--seed", type=int, default=0, help="base seed; scene i depends only on (seed, split, i)")
    p.add_argument(
        "--out", required=True, help="dataset folder: writes OUT/<split>.json and OUT/images/<split>/"
    )
    p.add_argument("--name", default=None, help="split name used for the files (default: the family)")
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes (default: 2 or the number of CPUs)",
    )
    p.add_argument("--width", type=int, default=512, help="image width, pixels (default 512)")
    p.add_argument("--height", type=int, default=384, help="image height, pixels (default 384)")
    p.add_argument(
        "--rig",
        default=None,
        help="Anny rig of the stored pose parameters (default: the config's body.anny_rig)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from jotr.body.config import BodyConfig
    from jotr.errors import InputError
    from jotr.synth.scene import SynthOptions
    from jotr.synth.writer import write_split

    if args.width < 64 or args.height < 64:
        raise InputError(f"synth: image size must be at least 64x64, got {args.width}x{args.height}")
    if args.workers < 1:
        raise InputError(f"synth: --workers must be >= 1, got {args.workers}")
    options = SynthOptions(width=args.width, height=args.height, rig=args.rig or BodyConfig().anny_rig)
    summary = write_split(
        args.out,
        args.split,
        args.num,
        args.seed,
        workers=args.workers,
        options=options,
        split=args.name,
        progress=not args.no_progress,
    )
    print(
        f"wrote {summary.json_path}: {summary.num_images} images, {summary.num_annotations} persons, "
        f"mean target visible fraction {summary.target_visible_fraction:.3f}, "
        f"{summary.images_per_second:.2f} images/s ({summary.seconds:.1f} s, {args.workers} workers)"
    )
    return 0
