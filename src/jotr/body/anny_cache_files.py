"""The Anny cache folder: where it is, how a build announces itself, and making its files readable.

**Where jotr keeps it** (one rule for ``make``, the CLI, the Python API, the web demo and the tests):
``$ANNY_CACHE_DIR`` when set, else the per-user ``$XDG_CACHE_HOME/jotr/anny`` (``~/.cache/jotr/anny``).

Kept apart from :mod:`jotr.body.anny_cache` (the builder, which imports the body) so that
:mod:`jotr.body.anny` can use it without importing the builder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


CACHE_ENV = "ANNY_CACHE_DIR"  # overrides the per-user default (also read by anny itself)
EXPECTED_BUILD_MB = 830  # measured size of a fresh cache holding CONFIGS (intermediates included)


def default_cache_dir() -> Path:
    """The Anny cache folder: ``$ANNY_CACHE_DIR`` if set and non-empty, else ``$XDG_CACHE_HOME/jotr/anny``
    (``~/.cache/jotr/anny`` when ``XDG_CACHE_HOME`` is unset or empty)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "jotr" / "anny"


def cache_size_mb(cache_dir: Path) -> float:
    """Total size of the cache's safetensors files, MiB (0 when the folder does not exist)."""
    return sum(p.stat().st_size for p in _cache_files(cache_dir)) / 2**20 if cache_dir.exists() else 0.0


@contextlib.contextmanager
def announce_builds(cache_dir: Path) -> Iterator[None]:
    """While Anny loads inside this block, turn its "building model data" notice into one warning naming
    ``cache_dir`` and the expected size, plus a progress bar of the megabytes written (a TTY only).

    Anny logs "No cached model data found ... building" (INFO) before each build; a handler on its logger
    catches that, so a load from a filled cache says nothing."""
    anny_logger = logging.getLogger("anny.models.model_data")
    state: dict[str, object] = {}
    stop = threading.Event()

    def watch() -> None:
        from tqdm import tqdm

        start_mb = cache_size_mb(cache_dir)
        with tqdm(total=EXPECTED_BUILD_MB, unit="MB", desc="Anny cache", disable=None, leave=False) as bar:
            while not stop.wait(1.0):
                bar.n = min(int(cache_size_mb(cache_dir) - start_mb), EXPECTED_BUILD_MB)
                bar.refresh()

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if state or "No cached model data found" not in record.getMessage():
                return
            state["start"] = time.perf_counter()
            logger.warning(
                "building the Anny body-model cache in %s (first use only: about %d MB, 1-4 minutes; "
                "set %s to use an existing cache)",
                cache_dir,
                EXPECTED_BUILD_MB,
                CACHE_ENV,
            )
            thread = threading.Thread(target=watch, name="anny-cache-progress", daemon=True)
            state["thread"] = thread
            thread.start()

    handler = _Catch(logging.INFO)
    saved = anny_logger.level, anny_logger.propagate
    anny_logger.addHandler(handler)
    anny_logger.setLevel(logging.INFO)
    anny_logger.propagate = False  # anny's own INFO lines stay quiet
    try:
        yield
    finally:
        anny_logger.removeHandler(handler)
        anny_logger.setLevel(saved[0])
        anny_logger.propagate = saved[1]
        stop.set()
        if "thread" in state:
            state["thread"].join(timeout=5)
            logger.warning(
                "Anny cache built: %s (%.0f MB, %.0f s)",
                cache_dir,
                cache_size_mb(cache_dir),
                time.perf_counter() - state["start"],
            )


def _cache_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*.safetensors") if p.is_file())


def share_cache_files(cache_dir: str | Path | None = None) -> int:
    """Give this user's cache files and folders the permissions of normally created ones (``0666 & ~umask``,
    folders ``0777 & ~umask``); returns how many were changed.

    safetensors writes its files mode 0600 (a private temporary renamed into place), so another user of a
    shared cache could not read them and Anny failed for them; with the usual umask 022 they become 0644."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    mask = os.umask(0)
    os.umask(mask)
    uid = os.getuid() if hasattr(os, "getuid") else None
    changed = 0
    try:
        entries = [cache_dir, *cache_dir.rglob("*")]
    except OSError:
        return 0
    for p in entries:
        try:
            st = p.lstat()
        except OSError:
            continue
        if uid is not None and st.st_uid != uid:
            continue
        if stat.S_ISDIR(st.st_mode):
            want = 0o777 & ~mask
        elif stat.S_ISREG(st.st_mode):
            want = 0o666 & ~mask
        else:
            continue
        # only add permissions: never take away what the owner gave on purpose
        new_mode = stat.S_IMODE(st.st_mode) | want
        if new_mode != stat.S_IMODE(st.st_mode):
            try:
                os.chmod(p, new_mode)
                changed += 1
            except OSError:
                continue
    return changed
