"""Build the Anny model cache once: ``python -m jotr.body.anny_cache [--cache-dir DIR] [--prune]``.

Anny builds its blendshapes from the packaged MakeHuman targets on first use (one to four minutes, ~830 MB of
files) and stores safetensors files in its cache folder. **Where jotr keeps it** (one rule for ``make``, the
CLI, the Python API, the web demo and the tests; :func:`default_cache_dir`): ``$ANNY_CACHE_DIR`` when set,
else the per-user ``$XDG_CACHE_HOME/jotr/anny`` (``~/.cache/jotr/anny``). The set-up (``make``,
``scripts/setup.sh``) fills that folder, so a later ``jotr`` finds it with no variable. A build (first use of
a rig/topology) announces itself with the folder, the expected size and a progress bar
(:func:`announce_builds`). This command builds what :class:`jotr.body.anny.AnnyBody` loads -- the training
rig/topology of the default config and the full mesh of the same rig -- runs one float32 forward/backward on
each (so warp also compiles its skinning kernels into its own cache), and prints one line. Re-running it only
loads the files (seconds).

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
from jotr.body.anny_cache_files import (  # noqa: F401  (re-exported: tests, scripts)
    CACHE_ENV,
    EXPECTED_BUILD_MB,
    _cache_files,
    announce_builds,
    cache_size_mb,
    default_cache_dir,
    share_cache_files,
)

# (rig, topology) pairs AnnyBody uses: the training default and the rendering mesh of the same rig.
CONFIGS = ((DEFAULT_RIG, DEFAULT_TOPOLOGY), (DEFAULT_RIG, FULL_TOPOLOGY))
INTERMEDIATE_PREFIXES = ("load_data_", "build_model_data_")


def adopt_cache(existing: str | Path, cache_dir: str | Path | None = None) -> bool:
    """Make an empty/missing ``cache_dir`` (default :func:`default_cache_dir`) a link to the filled cache
    ``existing`` instead of building a second copy; True when a link was made.

    Used by the set-up for checkouts whose cache was built in ``<repo>/.cache/anny`` by earlier versions."""
    existing = Path(existing).expanduser().resolve()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not existing.is_dir() or not _cache_files(existing):
        return False
    if cache_dir.is_symlink() or (cache_dir.exists() and any(cache_dir.iterdir())):
        return False
    if cache_dir.exists():
        cache_dir.rmdir()
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    cache_dir.symlink_to(existing, target_is_directory=True)
    return True


def build_cache(
    cache_dir: str | Path | None = None, configs=CONFIGS, prune: bool = False
) -> dict[str, float | int | str]:
    """Build (or load) every ``(rig, topology)`` of ``configs`` into ``cache_dir``; returns a summary dict."""
    from jotr.body.anny import AnnyBody

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in _cache_files(cache_dir)}
    start = time.perf_counter()
    for rig, topology in configs:
        body = AnnyBody(rig=rig, topology=topology, cache_dir=cache_dir)
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
        "--cache-dir",
        default=None,
        help="cache folder (default: $ANNY_CACHE_DIR, else $XDG_CACHE_HOME/jotr/anny = ~/.cache/jotr/anny)",
    )
    parser.add_argument("--prune", action="store_true", help="delete Anny's intermediate files afterwards")
    parser.add_argument(
        "--adopt",
        metavar="DIR",
        default=None,
        help="if the cache folder is empty and DIR holds a built cache, link it to DIR (no second copy)",
    )
    args = parser.parse_args(argv)
    if args.adopt is not None:
        target = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        if adopt_cache(args.adopt, target):
            print(f"anny cache: {target} -> {Path(args.adopt).resolve()} (linked, not copied)")
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
