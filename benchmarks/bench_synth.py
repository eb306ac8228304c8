"""Benchmark: synthetic-dataset generation throughput (images/s) per family and worker count.

    python -m benchmarks.bench_synth [--families none oc pc crowd] [--num 40] [--workers 1 2]
                                     [--width 512] [--height 384]

Each (family, workers) pair writes ``--num`` images with ``jotr.synth.writer.write_split`` into a temporary
folder; the time includes start-up (process spawn, body model, OpenGL context), as a user of ``jotr synth``
sees
it. For every family the JSON of the different worker counts is compared byte for byte (same seed -> same
file).

Prints a table and one JSON line (``{"bench": "synth", ...}``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import tempfile
import time
from pathlib import Path

from jotr.synth.scene import FAMILIES, SynthOptions
from jotr.synth.writer import write_split


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool workers), all threads."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="synthetic-data generation throughput")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--num", type=int, default=40)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    options = SynthOptions(width=args.width, height=args.height)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            digests = {}
            for workers in args.workers:
                out = Path(tmp) / f"{family}_{workers}"
                start = time.perf_counter()
                cpu0 = _cpu_seconds()
                summary = write_split(
                    out, family, args.num, args.seed, workers=workers, options=options, progress=False
                )
                total = time.perf_counter() - start
                cpu = _cpu_seconds() - cpu0
                digests[workers] = hashlib.sha256((out / f"{family}.json").read_bytes()).hexdigest()
                rows.append(
                    {
                        "family": family,
                        "workers": workers,
                        "num": args.num,
                        "seconds": round(total, 2),
                        "images_per_s": round(args.num / total, 3),
                        "cpu_s_per_image": round(cpu / args.num, 3),
                        "persons": summary.num_annotations,
                        "target_visible_fraction": round(summary.target_visible_fraction, 3),
                    }
                )
            same = len(set(digests.values())) == 1
            for row in rows:
                if row["family"] == family:
                    row["json_identical_across_workers"] = same

    print(
        f"{'family':<7} {'workers':>7} {'images':>6} {'seconds':>8} {'img/s':>7} {'CPU s/img':>9} "
        f"{'persons':>7} {'target vis':>10} {'same JSON':>9}"
    )
    for r in rows:
        same = str(r["json_identical_across_workers"])
        print(
            f"{r['family']:<7} {r['workers']:>7} {r['num']:>6} {r['seconds']:>8.1f} "
            f"{r['images_per_s']:>7.2f} {r['cpu_s_per_image']:>9.3f} {r['persons']:>7} "
            f"{r['target_visible_fraction']:>10.3f} {same:>9}"
        )
    print(json.dumps({"bench": "synth", "width": args.width, "height": args.height, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
