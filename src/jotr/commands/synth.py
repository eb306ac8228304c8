"""``jotr synth``: generate a synthetic occluded-people split (docs/synthetic_format.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


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
    p.add_argument(
        "--force", action="store_true", help="replace an existing split of the same name (only one jotr made)"
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
    p.add_argument(
        "--truncation",
        type=float,
        default=None,
        help="share of none/oc/pc scenes whose target is cut by the image frame (default 0.25; 0 = never)",
    )
    p.add_argument(
        "--pose-mix",
        default=None,
        metavar="MODE=W,...",
        help="pose modes and weights, e.g. 'archetype=1' for the six original archetypes only (default "
        "archetype=0.3,mixed=0.2,free=0.2,arms_up=0.12,kneeling=0.08,lying=0.1)",
    )
    p.add_argument(
        "--backgrounds",
        default=None,
        metavar="auto|procedural|DIR",
        help="background photographs: 'auto' = the Debian wallpaper packages' photographs when installed "
        "(mate-backgrounds, plasma-workspace-wallpapers), 'procedural' = none, or a folder of images "
        "(default auto; procedural backgrounds when no photograph is found)",
    )
    p.add_argument(
        "--photo-share",
        type=float,
        default=None,
        help="share of scenes with a photograph behind them when photographs are available (default 0.8)",
    )
    p.add_argument(
        "--no-camera-effects",
        action="store_true",
        help="clean renders: no white-balance / colour jitter, vignetting, blur, sensor noise or JPEG "
        "re-compression (default: random camera effects)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_pose_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"archetype=0.5,lying=0.5"`` -> (("archetype", 0.5), ("lying", 0.5)); InputError when malformed."""
    from jotr.errors import InputError
    from jotr.synth.poses import POSE_MODES

    mix = []
    for item in text.split(","):
        name, sep, weight = item.strip().partition("=")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            value = -1.0
        if name not in POSE_MODES or not value >= 0:
            raise InputError(
                f"synth: bad --pose-mix entry {item!r}: use MODE=WEIGHT with MODE in {', '.join(POSE_MODES)}"
            )
        mix.append((name, value))
    if not mix or sum(w for _, w in mix) <= 0:
        raise InputError("synth: --pose-mix needs a positive total weight")
    return tuple(mix)


def run(args: argparse.Namespace) -> int:
    from jotr.body.config import BodyConfig
    from jotr.errors import InputError
    from jotr.synth.scene import SynthOptions
    from jotr.synth.writer import write_split
    from jotr.utils.io import check_writable_dir, remove_if_empty

    if args.width < 64 or args.height < 64:
        raise InputError(f"synth: image size must be at least 64x64, got {args.width}x{args.height}")
    if args.workers < 1:
        raise InputError(f"synth: --workers must be >= 1, got {args.workers}")
    if not 0 <= args.seed < 2**32:
        raise InputError(f"synth: --seed must be in [0, 2^32), got {args.seed}")
    if args.num < 1:
        raise InputError(f"synth: --num must be >= 1, got {args.num}")
    if args.name is not None and (
        not args.name or Path(args.name).name != args.name or args.name in (".", "..")
    ):
        raise InputError(f"synth: --name must be a plain file name, got {args.name!r}")
    out = check_writable_dir(args.out, "synth output folder")  # before loading the body model
    image_dir = out / "images" / (args.name or args.split)
    new_dirs = [p for p in (image_dir, image_dir.parent, out) if not p.exists()]  # deepest first
    extra = {}
    if args.truncation is not None:
        if not 0.0 <= args.truncation <= 1.0:
            raise InputError(f"synth: --truncation must be in [0, 1], got {args.truncation}")
        extra["truncation"] = float(args.truncation)
    if args.pose_mix is not None:
        extra["pose_mix"] = parse_pose_mix(args.pose_mix)
    if args.photo_share is not None:
        if not 0.0 <= args.photo_share <= 1.0:
            raise InputError(f"synth: --photo-share must be in [0, 1], got {args.photo_share}")
        extra["photo_share"] = float(args.photo_share)
    if args.no_camera_effects:
        extra["camera_effects"] = False
    if args.backgrounds is not None:
        from jotr.synth.photos import find_photos

        find_photos(args.backgrounds)  # a missing or empty folder is an error before anything is loaded
        extra["backgrounds"] = args.backgrounds
    options = SynthOptions(
        width=args.width, height=args.height, rig=args.rig or BodyConfig().anny_rig, **extra
    )
    try:
        summary = write_split(
            out,
            args.split,
            args.num,
            args.seed,
            workers=args.workers,
            options=options,
            split=args.name,
            progress=not args.no_progress,
            force=args.force,
        )
    except BaseException:
        remove_if_empty(new_dirs)  # a failed run leaves no empty folders behind
        raise
    print(
        f"wrote {summary.json_path}: {summary.num_images} images, {summary.num_annotations} persons, "
        f"mean target visible fraction {summary.target_visible_fraction:.3f}, "
        f"{summary.images_per_second:.2f} images/s, "
        f"{summary.num_annotations / max(summary.seconds, 1e-9):.2f} persons/s "
        f"({summary.seconds:.1f} s, {args.workers} workers)"
    )
    return 0
