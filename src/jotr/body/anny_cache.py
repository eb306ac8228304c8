"""Build the Anny model cache once: ``python -m jotr.body.anny_cache [--cache-dir DIR] [--prune]``.

Anny builds its blendshapes from the packaged MakeHuman targets on first use (one to three minutes, ~800 MB
of files) and stores safetensors files in ``$ANNY_CACHE_DIR`` (default ``~/.cache/anny``). This command
builds what :class:`jotr.body.anny.AnnyBody` loads -- the training rig/topology of the default config and
the full mesh of the same rig -- runs one float32 forward/backward on each (so warp also compiles its
skinning kernels into its own cache), and prints one line. Re-running it only loads the files (seconds).

``--prune`` then deletes Anny's intermediate files (``load_data_*``, ``build_model_data_*``, ~760 MB): the
compact files are all that the listed configurations load, so they keep loading without a rebuild; a
configuration not built here would rebuild the intermediates (about a minute) when first used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jotr.body.anny import DEFAULT_RIG, DEFAULT_TOPOLOGY, FULL_TOPOLOGY
from jotr.body.anny_cache_files import default_cache_dir, share_cache_files  # re-exported (tests, scripts)

# (rig, topology) pairs AnnyBody uses: the training default and the rendering mesh of the same rig.
CONFIGS = ((DEFAULT_RIG, DEFAULT_TOPOLOGY), (DEFAULT_RIG, FULL_TOPOLOGY))
INTERMEDIATE_PREFIXES = ("load_data_", "build_model_data_")


def _cache_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*.safetensors") if p.is_file())


def build_cache(
    cache_dir: str | Path | None = None, configs=CONFIGS, prune: bool = False
) -> dict[str, float | int | str]:
    """Build (or load) every ``(rig, topology)`` of ``configs`` into ``cache_dir``; returns a summary dict."""
    from jotr.body.anny import AnnyBody

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    import anny.paths

    anny.paths.set_anny_cache_path(cache_dir)
    before = {p.name for p in _cache_files(cache_dir)}
    start = time.perf_counter()
    for rig, topology in configs:
        body = AnnyBody(rig=rig, topology=topology)
        pose = body.rest_pose(1).requires_grad_(True)
        out = body(pose, body.default_shape(1))
        out.vertices.sum().backward()
    share_cache_files(cache_dir)
    built = [p for p in _cache_files(cache_dir) if p.name not in before]
    removed = 0
    if prune:
        for path in _cache_files(cache_dir):
            if path.name.startswith(INTERMEDIATE_PREFIXES):
                path.unlink()
                removed += 1
    files = _cache_files(cache_dir)
    return {
        "cache_dir": str(cache_dir),
        "configs": len(configs),
        "built_files": len(built),
        "pruned_files": removed,
        "size_mb": sum(p.stat().st_size for p in files) / 2**20,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jotr.body.anny_cache", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--cache-dir", default=None, help="cache folder (default: $ANNY_CACHE_DIR or ~/.cache/anny)"
    )
    parser.add_argument("--prune", action="store_true", help="delete Anny's intermediate files afterwards")
    args = parser.parse_args(argv)
    summary = build_cache(args.cache_dir, prune=args.prune)
    state = f"built {summary['built_files']} files" if summary["built_files"] else "up to date"
    pruned = f", pruned {summary['pruned_files']} intermediate files" if summary["pruned_files"] else ""
    names = ", ".join(f"{r}/{t}" for r, t in CONFIGS)
    print(
        f"anny cache {state}{pruned}: {summary['cache_dir']} ({names}; {summary['size_mb']:.0f} MB, "
        f"{summary['seconds']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
