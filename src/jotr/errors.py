"""Exceptions for bad user input. The CLI prints their message and exits non-zero (no traceback)."""


class JOTRError(Exception):
    """Base class of errors caused by user input (files, shapes, values), with a message naming the input."""


class InputError(JOTRError, ValueError):
    """An input (file, tensor, keypoints, box, image) is missing, malformed or out of range."""


class CheckpointError(JOTRError):
    """A checkpoint is missing, corrupt, or does not match the model."""
