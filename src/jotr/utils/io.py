"""Atomic file writes, jotr's own temporaries, and the output policy shared by every command.

Atomic writes: a temp file in the same folder, fsync, then rename; readers never see half a file. Folders
created only to hold a file that then failed are removed again, so a failure leaves no empty output folders.

Temporaries are named ``.<name>.jotr-<host>-<pid>.<random>.tmp`` (files) or ``....partial`` / ``....old``
(staged folders, which also hold the :data:`MARKER` file). :func:`clean_stale_temporaries` removes only names
of exactly that form whose writer (same host, that pid) no longer runs, and folders only when they hold the
marker: a user's ``.bashrc.20240101.old`` or ``.mozilla.20231231.old/`` is never touched.

Output policy (:func:`check_new_output`, :func:`mark_output`, :func:`unique_result_names`): every command
refuses to replace an existing result (file or folder) unless ``--force`` (training: ``--resume``), and
even with ``--force`` never replaces a folder that jotr did not create (one without the :data:`MARKER` file);
result names are unique per input.

:func:`check_writable_dir` / :func:`check_writable_file` let commands refuse an unusable output path (a file
where a folder is needed, no permission, a read-only or virtual file system) before doing any work.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from jotr.errors import InputError

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")[:40]
# ".<name>.jotr-<host>-<pid>.<random>.<kind>"; name may itself contain dots
_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.jotr-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?P<kind>tmp|partial|old)$"
)
# A folder that jotr created (a result, a run, a dataset, a staged folder) holds this file.
MARKER = ".jotr-output"


def temp_prefix(name: str) -> str:
    """Prefix of a temporary next to ``name``: ``.<name>.<host>-<pid>.`` (see the module docstring)."""
    return f".{name}.jotr-{_HOST}-{os.getpid()}."


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


def is_stale_temporary(path: Path) -> bool:
    """True for a temporary of a jotr process that no longer runs (see the module docstring): the exact name
    form with this host and a dead pid; a folder must also hold the :data:`MARKER` file; links never."""
    m = _TEMP_RE.match(path.name)
    if m is None or m["host"] != _HOST:  # another machine's writer: cannot tell
        return False
    pid = int(m["pid"])
    if pid == os.getpid() or _pid_alive(pid):
        return False
    try:
        if path.is_symlink():
            return False
        if path.is_dir():
            return m["kind"] in ("partial", "old") and (path / MARKER).is_file()
        return m["kind"] == "tmp" and path.is_file()
    except OSError:
        return False


def clean_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the stale jotr temporaries directly inside ``folder`` (only those of the output ``name`` when
    given: commands that write one file into a user's folder pass it); returns them. A missing or unreadable
    folder is not an error (nothing to clean)."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if name is not None and not p.name.startswith(f".{name}.jotr-"):
            continue
        if not is_stale_temporary(p):
            continue
        try:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


def make_owned_temp_dir(prefix: str) -> Path:
    """A new folder in the system temp folder that records its owner (host, pid) in the :data:`MARKER` file,
    so that :func:`clean_abandoned_temp_dirs` can remove it after the owner was killed (SIGKILL skips the
    owner's own clean-up)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    (root / MARKER).write_text(json.dumps({"created_by": "jotr", "host": _HOST, "pid": os.getpid()}) + "\n")
    return root


def clean_abandoned_temp_dirs(prefix: str, parent: str | Path | None = None) -> list[Path]:
    """Remove folders ``<parent>/<prefix>*`` made by :func:`make_owned_temp_dir` whose owner (this host) no
    longer runs; folders without jotr's marker, of other hosts or of live processes are kept."""
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            if folder.is_symlink() or not folder.is_dir():
                continue
            owner = json.loads((folder / MARKER).read_text())
            pid = int(owner["pid"])
            if owner.get("created_by") != "jotr" or owner.get("host") != _HOST:
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


# ---------------------------------------------------------------------------------------- output policy


def mark_output(folder: str | Path, kind: str) -> None:
    """Write the :data:`MARKER` file into ``folder`` (which jotr created): ``kind`` says what it holds."""
    (Path(folder) / MARKER).write_text(json.dumps({"created_by": "jotr", "kind": kind}) + "\n")


def is_jotr_output(folder: str | Path) -> bool:
    """Whether ``folder`` holds jotr's :data:`MARKER` file (so jotr created it)."""
    return (Path(folder) / MARKER).is_file()


def check_new_output(
    path: str | Path, what: str, *, force: bool = False, hint: str = "pass --force to replace it"
) -> Path:
    """The output policy of every command, checked before any work: ``path`` (a result file or folder) must
    not exist, unless ``force``; a folder is replaced only if jotr created it (:data:`MARKER`) or it is empty.
    InputError naming ``path`` otherwise; returns ``path``."""
    path = Path(path).expanduser()
    if not path.exists() and not path.is_symlink():
        return path
    if not force:
        raise InputError(f"{what} {path} already exists; {hint}")
    if path.is_symlink():
        raise InputError(f"{what} {path} is a symbolic link; jotr does not replace links, remove it first")
    if path.is_dir():
        try:
            empty = not any(path.iterdir())
        except OSError as exc:
            raise InputError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
        if not empty and not is_jotr_output(path):
            raise InputError(
                f"{what} {path} exists and was not created by jotr (no {MARKER} file); jotr never replaces "
                "it, even with --force: remove it yourself or choose another output"
            )
    return path


def unique_result_names(inputs: Iterable[Path]) -> dict[Path, str]:
    """A distinct result name per input path: its stem when no other input has that stem, else
    ``stem_ext``, with ``_2``, ``_3`` ... appended while that is taken (``a.png``, ``a.jpg``, ``a_png.bmp`` ->
    ``a_png_2``, ``a_jpg``, ``a_png``). Names are compared case-insensitively (case-insensitive file systems)
    and inputs are taken in sorted order, so the names do not depend on the order given."""
    paths = sorted(dict.fromkeys(Path(p) for p in inputs), key=str)
    count: dict[str, int] = {}
    for p in paths:
        count[p.stem.casefold()] = count.get(p.stem.casefold(), 0) + 1
    out = {p: p.stem for p in paths if count[p.stem.casefold()] == 1}
    taken = {name.casefold() for name in out.values()}
    for p in paths:
        if p in out:
            continue
        ext = p.suffix.lstrip(".").lower()
        base = f"{p.stem}_{ext}" if ext else p.stem
        name, k = base, 2
        while name.casefold() in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name.casefold())
        out[p] = name
    return out


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
