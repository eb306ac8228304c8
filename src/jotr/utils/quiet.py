"""Keeping third-party console noise out of jotr's output: native libraries' start-up banners (warp's CUDA
notice) and chatty Python loggers. jotr's own messages and warnings are untouched."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

# Python loggers of dependencies that log at INFO on import or per call (OpenGL: "No OpenGL_accelerate")
NOISY_LOGGERS = ("OpenGL", "absl", "trimesh", "PIL", "matplotlib", "httpx", "gradio", "urllib3", "h5py")


def quiet_dependency_loggers(level: int = logging.WARNING) -> None:
    """Raise the level of :data:`NOISY_LOGGERS` to ``level`` (the CLI does this unless ``--verbose``)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence writes to file descriptor 2 by native code (fprintf, absl's C++ log) inside the block; Python's
    own ``sys.stderr`` is flushed first. Only around initialisation steps whose output carries no information
    (e.g. "Created TensorFlow Lite XNNPACK delegate for CPU")."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
