"""The Anny cache folder: where it is (``$ANNY_CACHE_DIR``) and making its files readable to other users.

Kept apart from :mod:`jotr.body.anny_cache` (the builder, which imports the body) so that
:mod:`jotr.body.anny` can share the files it writes without importing the builder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))


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
