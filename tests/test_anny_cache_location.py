"""Where the Anny cache lives: one rule (``$ANNY_CACHE_DIR``, else ``~/.cache/jotr/anny``) for make, the
CLI, the API and the tests; a fresh ``jotr`` process finds a filled default with no variable, no rebuild."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jotr.body.anny_cache import adopt_cache, announce_builds, default_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_rule_env_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.setenv("ANNY_CACHE_DIR", "")  # empty counts as unset
    assert default_cache_dir() == tmp_path / "xdg" / "jotr" / "anny"
    monkeypatch.delenv("ANNY_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "jotr" / "anny"


def test_adopt_links_a_filled_cache_once(tmp_path):
    legacy = tmp_path / "repo" / ".cache" / "anny"
    (legacy / "v14").mkdir(parents=True)
    (legacy / "v14" / "build_compact_model_data_x.safetensors").write_bytes(b"x")
    target = tmp_path / "user" / "jotr" / "anny"
    assert not adopt_cache(tmp_path / "missing", target)  # nothing to adopt
    assert adopt_cache(legacy, target)
    assert target.is_symlink() and (target / "v14" / "build_compact_model_data_x.safetensors").is_file()
    assert not adopt_cache(legacy, target)  # already there
    other = tmp_path / "filled"
    (other / "v14").mkdir(parents=True)
    assert not adopt_cache(legacy, other)  # a non-empty folder is never replaced
    assert not other.is_symlink()


def test_a_build_announces_itself_and_a_load_says_nothing(tmp_path, caplog):
    anny_logger = logging.getLogger("anny.models.model_data")
    with caplog.at_level(logging.INFO, logger="jotr.body.anny_cache"), announce_builds(tmp_path):
        anny_logger.info("Loading cached model data from %s", tmp_path / "v14" / "a.safetensors")
    assert not caplog.records
    with caplog.at_level(logging.INFO, logger="jotr.body.anny_cache"), announce_builds(tmp_path):
        anny_logger.info("No cached model data found at %s, building model data...", tmp_path / "b")
        anny_logger.info("No cached model data found at %s, building model data...", tmp_path / "c")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # one announcement for the whole load, one summary
    assert str(tmp_path) in messages[0] and "830 MB" in messages[0] and "ANNY_CACHE_DIR" in messages[0]
    assert messages[1].startswith("Anny cache built")
    assert anny_logger.level == logging.NOTSET and anny_logger.propagate  # restored


def test_cli_finds_the_filled_default_without_a_variable(anny_cache_env, tmp_path):
    """A fresh process with no ANNY_CACHE_DIR loads the filled per-user cache: no announcement, no new file,
    nothing written to the home folder."""
    real = anny_cache_env.resolve()
    before = sorted(p.relative_to(real) for p in real.rglob("*"))
    xdg, home = tmp_path / "xdg", tmp_path / "home"
    (xdg / "jotr").mkdir(parents=True)
    home.mkdir()
    (xdg / "jotr" / "anny").symlink_to(real, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "ANNY_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(xdg), HOME=str(home), PYTHONPATH=str(REPO_ROOT / "src"))
    code = (
        "import anny.paths; from jotr.body.anny import AnnyBody; body = AnnyBody(); "
        "print(anny.paths.get_anny_cache_path(), body.num_vertices)"
    )  # what `jotr demo` / `jotr serve` / JOTRPredictor do first: build the Anny body
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == str(xdg / "jotr" / "anny")
    assert "building" not in proc.stderr.lower(), proc.stderr
    assert sorted(p.relative_to(real) for p in real.rglob("*")) == before
    assert not any(home.rglob("*"))


@pytest.mark.parametrize("path", ["Makefile", "scripts/setup.sh", ".ci/run"])
def test_setup_files_follow_the_rule(path):
    """make / the set-up / CI never pin another cache folder (that would be a second 830 MB copy)."""
    text = (REPO_ROOT / path).read_text()
    assert not re.search(r"ANNY_CACHE_DIR\s*[?:]?=", text), f"{path} sets ANNY_CACHE_DIR"
