"""Thin command-line front end. Each command lives in ``jotr.commands.<name>`` and provides
``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when used."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("jotr.commands.train", "train JOTR from a config (one process or torchrun)"),
    "eval": ("jotr.commands.evaluate", "evaluate a checkpoint: MPJPE / PA-MPJPE / PVE per dataset"),
    "demo": ("jotr.commands.demo", "images (+ keypoints) -> meshes, overlays and parameters"),
    "detect": ("jotr.commands.detect", "find the people: images/videos -> COCO-17 keypoint JSON for demo"),
    "demo-synthetic": (
        "jotr.commands.demo_synthetic",
        "the embedded-default job: synthetic scene -> JOTR -> overlay + errors",
    ),
    "synth": ("jotr.commands.synth", "generate a synthetic occluded-people dataset"),
    "convert-official": ("jotr.commands.convert_official", "convert an official JOTR checkpoint"),
    "export-onnx": ("jotr.commands.export_onnx", "export the inference network to ONNX"),
    "config": ("jotr.commands.config", "print the resolved config (defaults + files + overrides)"),
    "serve": ("jotr.commands.serve", "local web demo: upload a photo, get the meshes (needs jotr[web])"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jotr", description="Occluded 3D human mesh recovery with JOTR.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error (and debug logging)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # also accepted after the command; SUPPRESS keeps a flag given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


# OS errors about the input/output paths themselves (exit 2); any other OS error is a runtime failure (1).
_USAGE_ERRNOS = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EINVAL,
}


def describe_os_error(exc: OSError) -> str:
    """One line naming the path(s): ``"permission denied: /x/y"``."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).strip()
    reason = reason[:1].lower() + reason[1:]
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(paths)}" if paths else reason


def handle_error(command: str, exc: BaseException, debug: bool = False) -> int:
    """The CLI's error boundary: one line on stderr (the traceback too with ``debug``), and the exit status.

    :class:`~jotr.errors.JOTRError` (InputError, ConfigError, CheckpointError, ...) -> its ``exit_code``
    (2 for usage/input errors, 1 for failed runs); an OS error about a path -> 2, other OS errors (disk
    full, I/O) -> 1; anything else -> 1 ("internal error"); Ctrl-C -> 130."""
    from jotr.errors import JOTRError

    if isinstance(exc, KeyboardInterrupt):
        print(f"jotr {command}: interrupted", file=sys.stderr)
        return 130
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug else " (run with --debug for the traceback)"
    if isinstance(exc, JOTRError):
        message, code, hint = str(exc), int(getattr(exc, "exit_code", 2)), ""
    elif isinstance(exc, OSError):
        message = describe_os_error(exc)
        code = 2 if exc.errno in _USAGE_ERRNOS or isinstance(exc, FileNotFoundError) else 1
        hint = ""
    elif isinstance(exc, MemoryError):
        message, code = f"out of memory{': ' + str(exc) if str(exc) else ''}", 1
    else:
        message, code = f"internal error: {type(exc).__name__}: {exc}", 1
    line = " ".join(message.split())  # one line, whatever the message holds
    print(f"jotr {command}: error: {line}{hint}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if (args.verbose or debug) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not (args.verbose or debug):
        from jotr.utils.quiet import quiet_dependency_loggers

        quiet_dependency_loggers()
    if args.command is None:
        parser.print_help()
        return 0
    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one error boundary of the CLI
        return handle_error(args.command, exc, debug)


if __name__ == "__main__":
    sys.exit(main())
