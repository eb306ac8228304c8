"""``jotr demo-synthetic --out DIR [--checkpoint CKPT]``: the README's main command (``make demo``).

A held-out synthetic occluded scene with known ground truth goes through JOTRPredictor; the overlay, side
view, meshes and parameters are written to ``DIR/synthetic_<family>_<seed>_<index>/`` and MPJPE / PA-MPJPE /
PVE against the ground truth are printed. Without ``--checkpoint`` the model shipped with jotr is used
(``JOTRPredictor.from_pretrained()``, docs/model_card.md): no training at demo time.
``--train-demo-model`` instead uses the cached ``${JOTR_CACHE:-.cache/jotr}/demo_small.pt``, trained first
when missing (a few minutes on 2 CPU cores; see docs/demo.md and :mod:`jotr.inference.synthetic_demo`)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jotr.inference.synthetic_demo import HELD_OUT_SEED, DemoTraining

    d = DemoTraining()
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--force", action="store_true", help="replace an existing result folder (only one jotr created)"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="jotr checkpoint (default: the model shipped with jotr, docs/model_card.md)",
    )
    p.add_argument(
        "--family",
        default="oc",
        choices=["none", "oc", "pc", "crowd"],
        help="scene family (default oc: the target partly hidden behind objects)",
    )
    p.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help=f"scene seed (default {HELD_OUT_SEED}, held out)"
    )
    p.add_argument("--index", type=int, default=0, help="scene index within the seed (default 0)")
    p.add_argument("--width", type=int, default=512, help="scene width, pixels (default 512)")
    p.add_argument("--height", type=int, default=384, help="scene height, pixels (default 384)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--no-render", action="store_true", help="skip overlay/side renders")
    p.add_argument(
        "--frame",
        default="world",
        choices=["world", "camera"],
        help="frame of the mesh files: world (Y up, metres, feet on y=0; default) or camera (OpenCV)",
    )
    g = p.add_argument_group("training a demo model on the spot instead of using the shipped one")
    g.add_argument(
        "--train-demo-model",
        action="store_true",
        help="use ${JOTR_CACHE:-.cache/jotr}/demo_small.pt, trained first when missing (minutes)",
    )
    g.add_argument("--train-steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    g.add_argument(
        "--train-images",
        type=int,
        default=d.images_per_family,
        help=f"scenes per family (default {d.images_per_family})",
    )
    g.add_argument("--train-workers", type=int, default=d.workers, help=f"generation processes ({d.workers})")


def run(args: argparse.Namespace) -> int:
    from jotr.errors import InputError
    from jotr.inference.predictor import JOTRPredictor
    from jotr.inference.synthetic_demo import (
        DemoTraining,
        demo_folder_name,
        ensure_demo_checkpoint,
        run_synthetic_demo,
    )
    from jotr.utils.io import check_new_output, check_writable_dir

    if args.checkpoint is not None and args.train_demo_model:
        raise InputError("--checkpoint and --train-demo-model exclude each other")
    out = check_writable_dir(args.out, "output folder")  # before loading (or training) the model
    name = demo_folder_name(args.family, args.seed, args.index)
    check_new_output(out / name, "result folder", force=args.force)
    if args.checkpoint is None and not args.train_demo_model:
        print("[demo-synthetic] using the model shipped with jotr (no training)", flush=True)
        predictor = JOTRPredictor.from_pretrained(device=args.device)
        ckpt = "the shipped model"
    elif args.checkpoint is None:
        if args.train_steps < 1 or args.train_images < 1 or args.train_workers < 1:
            raise InputError("--train-steps, --train-images and --train-workers must be positive")
        training = DemoTraining(
            images_per_family=args.train_images, steps=args.train_steps, workers=args.train_workers
        )
        ckpt = ensure_demo_checkpoint(
            training=training, say=lambda msg: print(f"[demo-synthetic] {msg}", flush=True)
        )
        predictor = JOTRPredictor.from_checkpoint(ckpt, device=args.device)
    else:
        ckpt = args.checkpoint
        predictor = JOTRPredictor.from_checkpoint(ckpt, device=args.device)
    if predictor.cfg.body.kind != "anny":
        raise InputError(
            f"demo-synthetic needs a checkpoint of the Anny body model, {ckpt} uses "
            f"'{predictor.cfg.body.kind}'"
        )
    print(
        f"[demo-synthetic] held-out '{args.family}' scene (seed {args.seed}, index {args.index}) -> JOTR ...",
        flush=True,
    )
    render = not args.no_render
    if render:
        from jotr.viz.renderer import rendering_available

        ok, why = rendering_available()
        if not ok:
            print(f"[demo-synthetic] warning: no overlay/side view, offscreen rendering unavailable: {why}")
            render = False
    res = run_synthetic_demo(
        predictor,
        args.out,
        family=args.family,
        seed=args.seed,
        index=args.index,
        width=args.width,
        height=args.height,
        frame=args.frame,
        render=render,
    )
    from jotr.viz.overlay import person_swatch

    print(f"[demo-synthetic] outputs in {res.folder}")
    print(f"{'person':>6} {'visible':>8} {'MPJPE':>8} {'PA-MPJPE':>9} {'PVE':>8}   (mm, vs ground truth)")
    for m in res.metrics:
        swatch = f" {person_swatch(m.index)}" if sys.stdout.isatty() else ""  # the person's mesh colour
        row = f"{m.index:>6} {m.visible_fraction:>8.2f} {m.mpjpe:>8.1f} {m.pa_mpjpe:>9.1f} {m.pve:>8.1f}"
        print(row + swatch)
    print(
        f"{'mean':>6} {'':>8} {res.mean['mpjpe']:>8.1f} {res.mean['pa_mpjpe']:>9.1f} {res.mean['pve']:>8.1f}"
    )
    return 0 if res.metrics else 1
