"""Make the shipped model from a training checkpoint: ``python scripts/export_shipped_model.py CKPT``.

1. CKPT (a ``jotr train`` checkpoint, e.g. ``runs/<run>/best.pt``) is loaded strictly into the network its
   config describes and written as ``src/jotr/weights/jotr_anny_small.safetensors``: float16 weights, the
   resolved body/model config and the provenance (step, commit, training config) in the metadata; atomic;
   refused above 25 MB.
2. The written file is loaded back with ``JOTRPredictor.from_pretrained`` and its prediction on the fixed
   reference input (``jotr.weights.reference.reference_inputs``, built in code) is stored in
   ``tests/data/shipped_model_reference.npz`` -- what ``tests/test_shipped_model.py`` reproduces.
3. It prints the float16 effect (the same reference input through the float32 checkpoint) and the facts the
   model card needs (size, sha256, step, commit).

Commit both files together (``git add src/jotr/weights/jotr_anny_small.safetensors
tests/data/shipped_model_reference.npz``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO_ROOT / "tests" / "data" / "shipped_model_reference.npz"


def main(argv: list[str] | None = None) -> int:
    from jotr.weights import MAX_SHIPPED_BYTES, default_shipped_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="training checkpoint (.pt) of the Anny embedded default")
    p.add_argument("--out", default=None, help=f"shipped file (default {default_shipped_path()})")
    p.add_argument("--reference", default=None, help=f"reference prediction (default {DEFAULT_REFERENCE})")
    p.add_argument(
        "--max-mb", type=float, default=MAX_SHIPPED_BYTES / 1e6, help="size limit in MB (default 25)"
    )
    p.add_argument(
        "--int8-to-fit",
        action="store_true",
        help="when float16 is above the limit, store the largest weights as per-channel int8 until it fits",
    )
    p.add_argument("--allow-non-anny", action="store_true", help="accept a non-Anny body model (tests only)")
    args = p.parse_args(argv)
    try:
        return run(args)
    except Exception as exc:  # noqa: BLE001 - a clear one-line message for jotr's own errors
        from jotr.errors import JOTRError

        if isinstance(exc, JOTRError):
            print(f"export_shipped_model: error: {exc}", file=sys.stderr)
            return 2
        raise


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from jotr.inference.predictor import JOTRPredictor
    from jotr.weights import (
        default_shipped_path,
        export_shipped_model,
        file_sha256,
        read_shipped_file,
        shipped_provenance,
    )
    from jotr.weights.reference import compare_to_reference, reference_prediction, write_reference

    out = Path(args.out) if args.out else default_shipped_path()
    reference = Path(args.reference) if args.reference else DEFAULT_REFERENCE
    max_bytes = int(args.max_mb * 1e6)
    export_shipped_model(
        args.checkpoint,
        out,
        max_bytes=max_bytes,
        require_anny=not args.allow_non_anny,
        int8_to_fit=args.int8_to_fit,
    )
    shipped = JOTRPredictor.from_pretrained(out, device="cpu")
    ref = write_reference(shipped, reference, out)
    compare_to_reference(shipped, reference)  # the stored file reads back and matches

    original = JOTRPredictor.from_checkpoint(args.checkpoint, device="cpu")
    fp32 = reference_prediction(original)
    d_joints = float(np.abs(fp32["joints"] - ref["joints"]).max()) * 1000.0
    d_px = float(np.abs(fp32["joints_img"] - ref["joints_img"]).max())
    prov = shipped_provenance(out)
    _, metadata = read_shipped_file(out)
    int8 = json.loads(metadata.get("int8_keys", "[]"))
    print(f"shipped model: {out}")
    print(f"  size {out.stat().st_size / 1e6:.2f} MB, sha256 {file_sha256(out)}")
    print(f"  {len(int8)} tensors as int8" + (f" ({', '.join(int8)})" if int8 else "") + ", the rest float16")
    print(
        f"  from {prov.get('source_checkpoint')} (step {prov.get('step')}, commit {prov.get('git_commit')})"
    )
    print(
        f"  shipped file vs the float32 checkpoint on the reference input: joints max |diff| "
        f"{d_joints:.3f} mm, projected joints {d_px:.3f} px"
    )
    print(f"reference prediction: {reference} ({len(ref['joints'])} people)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
