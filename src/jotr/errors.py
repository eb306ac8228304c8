"""Exceptions for bad user input and failed runs. The CLI prints their message on one line (no traceback
unless ``--debug``) and exits with the error's ``exit_code``: 2 for usage/input errors, 1 for runtime
failures."""


class JOTRError(Exception):
    """Base class of errors caused by user input (files, shapes, values), with a message naming the input."""

    exit_code = 2


class InputError(JOTRError, ValueError):
    """An input (file, tensor, keypoints, box, image) is missing, malformed or out of range."""


class ConfigError(InputError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value, unreadable file)."""


class CheckpointError(JOTRError):
    """A checkpoint is missing, corrupt, or does not match the model."""


class RunError(JOTRError):
    """A run failed for a reason other than the form of its inputs (e.g. a NaN loss); exit status 1."""

    exit_code = 1


def describe_key_groups(groups: list[tuple[str, list[str]]], limit: int = 12) -> str:
    """``"missing (3): a, b, c; unexpected (1): d"`` for the non-empty groups, each cut after ``limit``."""
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:limit])}{' ...' if len(keys) > limit else ''}"
        for label, keys in groups
        if keys
    )
