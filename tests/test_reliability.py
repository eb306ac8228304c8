"""Issue 24 regressions: jotr never deletes or replaces what it did not create, refuses existing results
without ``--force``, and answers bad inputs with one-line errors instead of hangs, unbounded work or silently
wrong results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ====================================================================== 1. never delete a user's files


def _user_backups(folder: Path) -> list[Path]:
    """Ordinary backups that the old sweep deleted (hidden, dated, .old), made 2 days old."""
    (folder / ".mozilla.20231231.old").mkdir()
    (folder / ".mozilla.20231231.old" / "prefs.js").write_text("user data")
    (folder / ".ssh.20231231.old").mkdir()
    (folder / ".ssh.20231231.old" / "id_rsa").write_text("key")
    files = [
        folder / ".bashrc.20240101.old",
        folder / ".notes.abcdefgh.tmp",
        folder / ".draft.q9w8e7r6.partial",
    ]
    for f in files:
        f.write_text("user data")
    old = time.time() - 2 * 86400
    paths = [*files, folder / ".mozilla.20231231.old", folder / ".ssh.20231231.old"]
    for p in [*paths, folder / ".ssh.20231231.old" / "id_rsa"]:
        os.utime(p, (old, old))
    return paths


def test_sweep_never_touches_user_backups(tmp_path):
    from jotr.utils.io import clean_stale_temporaries

    backups = _user_backups(tmp_path)
    assert clean_stale_temporaries(tmp_path) == []
    assert clean_stale_temporaries(tmp_path, name="conv.pt") == []
    assert all(p.exists() for p in backups)
    assert (tmp_path / ".ssh.20231231.old" / "id_rsa").read_text() == "key"


def test_sweep_for_one_output_file_only_touches_that_file(tmp_path):
    from jotr.utils.io import _HOST, clean_stale_temporaries

    dead = _dead_pid()
    mine = tmp_path / f".conv.pt.jotr-{_HOST}-{dead}.ab12.tmp"
    other = tmp_path / f".model.onnx.jotr-{_HOST}-{dead}.ab12.tmp"  # another output: not ours to judge
    for p in (mine, other):
        p.write_text("x")
    assert clean_stale_temporaries(tmp_path, name="conv.pt") == [mine]
    assert other.exists() and not mine.exists()


def test_convert_official_keeps_backups_next_to_the_output(tmp_path):
    from jotr.commands.convert_official import convert
    from jotr.errors import JOTRError

    backups = _user_backups(tmp_path)
    bad = tmp_path / "official.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(JOTRError):
        convert(bad, tmp_path / "conv.pt")
    assert all(p.exists() for p in backups)
