"""Console noise: dependency loggers quieted by the CLI (not with --verbose), native stderr silenced only
inside the block."""

from __future__ import annotations

import logging
import os

from jotr.cli import main
from jotr.utils.quiet import native_stderr_silenced


def test_cli_quiets_dependency_loggers_unless_verbose(capsys):
    logging.getLogger("OpenGL").setLevel(logging.NOTSET)
    assert main(["config"]) == 0
    assert logging.getLogger("OpenGL").level == logging.WARNING
    logging.getLogger("OpenGL").setLevel(logging.NOTSET)
    assert main(["--verbose", "config"]) == 0
    assert logging.getLogger("OpenGL").level == logging.NOTSET
    capsys.readouterr()


def test_native_stderr_silenced_only_inside(capfd):
    with native_stderr_silenced():
        os.write(2, b"XNNPACK banner\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "after" in err
