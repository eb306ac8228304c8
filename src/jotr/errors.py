"""Exceptions for bad user input and failed runs. The CLI prints their message on one line (no traceback
unless ``--debug``) and exits with the error's ``exit_code``: 2 for usage/input errors, 1 for runtime
failures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


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


def describe_state_mismatch(
    expected: Mapping[str, Any], state: Mapping[str, Any], ignore: Callable[[str], bool] = lambda key: False
) -> str:
    """How the tensors of ``state`` fail to fit a module's ``expected`` state dict (missing keys, unexpected
    keys that ``ignore`` does not accept, shape mismatches; values with a ``.shape``), or ``""`` if they
    fit."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(k for k in set(state) - set(expected) if not ignore(k))
    mis_shaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    return describe_key_groups(
        [("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped)], limit=12
    )
