"""The thin CLI: help lists every command, bad input exits 2 with a message and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from jotr.cli import COMMANDS, main


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "jotr", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_help_lists_the_commands():
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    for name in (
        "train",
        "eval",
        "demo",
        "demo-synthetic",
        "synth",
        "convert-official",
        "export-onnx",
        "config",
    ):
        assert name in COMMANDS
        assert name in proc.stdout
    assert "Traceback" not in proc.stderr


def test_unknown_config_key_exits_2_with_message():
    proc = _run("config", "--set", "model.foo=1")
    assert proc.returncode == 2
    assert "jotr config: error:" in proc.stderr
    assert "model.foo" in proc.stderr and "d_model" in proc.stderr  # names the key and lists valid ones
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_config_command_in_process(capsys, tmp_path):
    assert main(["config", "--set", "train.lr=1e-4", "--set", "model.dec_layers=2"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["dec_layers"] == 2 and printed["train"]["lr"] == 1e-4
    assert main(["config", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main([]) == 0  # no command: help
    assert "COMMAND" in capsys.readouterr().out
