"""Atomic file writes: a temp file in the same folder, fsync, then rename. Readers never see half a file.

Temporaries are named ``.<name>.<host>-<pid>.<random>.tmp`` (files) or ``....partial`` / ``....old`` (staged
folders), so :func:`clean_stale_temporaries` can tell those of a killed process (same host, pid no longer
running) from those of a live writer. Folders created only to hold a file that then failed are removed again,
so a failure leaves no empty output folders behind.

:func:`check_writable_dir` / :func:`check_writable_file` let commands refuse an unusable output path (a file
where a folder is needed, no permission, a read-only or virtual file system) before doing any work.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jotr.errors import InputError

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")[:40]
# ".<name>.<host>-<pid>.<random>.<kind>"; name may itself contain dots
_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.(?P<kind>tmp|partial|old)$"
)
# mkstemp/mkdtemp names of older jotr versions (no host/pid): ".<name>.<8 random chars>.<kind>"
_LEGACY_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.(tmp|partial|old)$")
LEGACY_STALE_SECONDS = 3600.0  # a legacy temporary this old is treated as abandoned


def temp_prefix(name: str) -> str:
    """Prefix of a temporary next to ``name``: ``.<name>.<host>-<pid>.`` (see the module docstring)."""
    return f".{name}.{_HOST}-{os.getpid()}."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first (for :func:`remove_if_empty`)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each folder (deepest first) if it is empty; never raises."""
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error deleted
    (together with any folder created for it that is still empty)."""
    path = Path(path)
    created = make_parents(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except BaseException:
        remove_if_empty(created)
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        remove_if_empty(created)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


# ------------------------------------------------------------------------------------------- temporaries


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def is_stale_temporary(path: Path, now: float | None = None) -> bool:
    """True for a temporary left by a process that no longer runs (see the module docstring)."""
    m = _TEMP_RE.match(path.name)
    if m is not None:
        if m["host"] == _HOST:
            pid = int(m["pid"])
            return pid != os.getpid() and not _pid_alive(pid)
        return False  # another machine's writer: cannot tell
    if _LEGACY_RE.match(path.name):
        try:
            age = (now if now is not None else time.time()) - path.lstat().st_mtime
        except OSError:
            return False
        return age > LEGACY_STALE_SECONDS
    return False


def clean_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the stale temporaries (files and staged folders) directly inside ``folder``; returns them.

    A missing or unreadable folder is not an error (nothing to clean)."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        if not p.name.startswith(".") or not is_stale_temporary(p, now):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------------------- output checks


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    return p


def _probe(folder: Path, what: str, target: Path) -> None:
    """Create and delete a temporary file in ``folder``; InputError naming ``target`` if that fails."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix("write-test"), suffix=".tmp", dir=folder)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM):
            reason = "permission denied"
        elif exc.errno == errno.EROFS:
            reason = "read-only file system"
        raise InputError(
            f"{what} {target} is not writable: cannot create files in {folder} ({reason})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check, without creating anything, that ``path`` is (or can become) a folder this process can write.

    Raises :class:`InputError` naming ``path`` when it is a file, sits below a file, or its nearest existing
    folder does not accept new files."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} exists and is not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise InputError(f"{what} {path} cannot be created: {base} is not a folder")
    _probe(base, what, path)
    return path


def check_writable_file(path: str | Path, what: str = "output file") -> Path:
    """Like :func:`check_writable_dir` for an output file: not a folder, and its folder is writable."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, expected a file name")
    if path.name in ("", ".", ".."):
        raise InputError(f"{what} {path!s} is not a file name")
    check_writable_dir(path.parent, what=f"{what} {path}: folder")
    return path
