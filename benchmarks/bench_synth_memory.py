"""Benchmark: in-process synthetic-scene generation speed and memory growth (one process, one generator).

    python -m benchmarks.bench_synth_memory [--family pc] [--num 100] [--width 256] [--height 192]
                                            [--seed 0] [--set KEY=VALUE ...]

Generates scenes ``0..num-1`` of one family with :class:`jotr.synth.scene.SceneGenerator` and JPEG-encodes
each (as ``jotr synth`` does, without writing files), after one warm-up scene. Reports images/s, persons/s
(annotated persons), CPU seconds per image, and the resident set size (``VmRSS``) after the warm-up, after 10
scenes and at the end, with the growth per scene over the scenes after the tenth (a leak shows as a steady
growth). ``--set`` overrides :class:`~jotr.synth.scene.SynthOptions` fields (e.g. ``--set
backgrounds=procedural``, ``--set camera_effects=false``). Prints one JSON line (``{"bench": "synth_memory",
...}``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import time

from jotr.synth.scene import FAMILIES, SceneGenerator, SynthOptions
from jotr.synth.writer import _encode_jpeg


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _parse_set(items: list[str]) -> dict:
    fields = {f.name: f for f in dataclasses.fields(SynthOptions)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--set: unknown SynthOptions field {key!r}")
        default = getattr(SynthOptions(), key)
        if isinstance(default, bool):
            out[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            out[key] = type(default)(value)
        else:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="synthetic-scene speed and memory growth")
    p.add_argument("--family", default="pc", choices=FAMILIES)
    p.add_argument("--num", type=int, default=100)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    options = SynthOptions(width=args.width, height=args.height, **_parse_set(args.set))
    gen = SceneGenerator(options)
    try:
        _encode_jpeg(gen.generate(args.family, args.seed + 1, 0).image, options.jpeg_quality)  # warm-up
        rss = {"warm": _rss_mb()}
        persons = 0
        start, cpu0 = time.perf_counter(), _cpu()
        for i in range(args.num):
            scene = gen.generate(args.family, args.seed, i)
            _encode_jpeg(scene.image, options.jpeg_quality)
            persons += len(scene.persons)
            if i == 9:
                rss["after_10"] = _rss_mb()
        seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
        rss["end"] = _rss_mb()
    finally:
        gen.close()
    result = {
        "bench": "synth_memory",
        "family": args.family,
        "num": args.num,
        "size": [args.width, args.height],
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k != "pose_mix"},
        "images_per_s": round(args.num / seconds, 3),
        "persons_per_s": round(persons / seconds, 3),
        "cpu_s_per_image": round(cpu / args.num, 4),
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "rss_growth_mb_per_image": round(
            (rss["end"] - rss.get("after_10", rss["warm"])) / max(args.num - 10, 1), 3
        ),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
