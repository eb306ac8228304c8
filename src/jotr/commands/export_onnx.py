"""``jotr export-onnx CKPT OUT.onnx``: the inference network (image + keypoints -> body parameters, camera and
3D query joints; no body model) as ONNX with a dynamic batch axis, checked against PyTorch with onnxruntime.
See :mod:`jotr.inference.onnx_export` for the graph's inputs/outputs and the choice of exporter."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jotr.inference.onnx_export import DEFAULT_OPSET

    p.add_argument("checkpoint", help="jotr checkpoint (.pt)")
    p.add_argument("out", help="output .onnx file")
    p.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 20, default {DEFAULT_OPSET})"
    )
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |onnx - torch| allowed by the check")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for loading the checkpoint (e.g. body.smpl_model_path=...)",
    )


def run(args: argparse.Namespace) -> int:
    import math

    from jotr.engine.checkpoint import load_model
    from jotr.errors import InputError
    from jotr.inference.onnx_export import check_opset, export_onnx
    from jotr.utils.io import check_new_output, check_writable_file, clean_stale_temporaries

    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise InputError(f"--tolerance must be a positive number, got {args.tolerance}")
    check_opset(args.opset)
    out = check_writable_file(args.out, "ONNX output file")  # before loading and exporting
    check_new_output(out, "ONNX output file", force=args.force)
    clean_stale_temporaries(out.parent, name=out.name)  # only temporaries of this output file
    model, cfg = load_model(args.checkpoint, device="cpu", overrides=args.overrides)
    report = export_onnx(
        model, cfg.model, args.out, opset=args.opset, check=not args.no_check, tolerance=args.tolerance
    )
    print(
        f"wrote {report.path} (opset {report.opset}, inputs image/keypoints_hm/keypoints_valid, dynamic "
        f"batch)"
    )
    if report.max_abs_diff:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_diff.items())
        print(f"onnxruntime vs PyTorch, max |diff| at batch 3: {diffs}")
    return 0
