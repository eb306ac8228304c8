"""Exceptions for bad user input. The CLI prints their message and exits non-zero (no traceback)."""


class JOTRError(Exception):
    """Base class of errors caused by user input (files, shapes, values), with a message naming the input."""


class InputError(JOTRError, ValueError):
    """An input (file, tensor, keypoints, box, image) is missing, malformed or out of range."""


class CheckpointError(JOTRError):
    """A checkpoint is missing, corrupt, or does not match the model."""


def describe_key_groups(groups: list[tuple[str, list[str]]], limit: int = 12) -> str:
    """``"missing (3): a, b, c; unexpected (1): d"`` for the non-empty groups, each cut after ``limit``."""
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:limit])}{' ...' if len(keys) > limit else ''}"
        for label, keys in groups
        if keys
    )
