"""Thin command-line front end. Each command lives in ``jotr.commands.<name>`` and provides
``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("jotr.commands.train", "train JOTR from a config (one process or torchrun)"),
    "eval": ("jotr.commands.evaluate", "evaluate a checkpoint: MPJPE / PA-MPJPE / PVE per dataset"),
    "demo": ("jotr.commands.demo", "images (+ keypoints) -> meshes, overlays and parameters"),
    "demo-synthetic": (
        "jotr.commands.demo_synthetic",
        "the embedded-default job: synthetic scene -> JOTR -> overlay + errors",
    ),
    "synth": ("jotr.commands.synth", "generate a synthetic occluded-people dataset"),
    "convert-official": ("jotr.commands.convert_official", "convert an official JOTR checkpoint"),
    "export-onnx": ("jotr.commands.export_onnx", "export the inference network to ONNX"),
    "config": ("jotr.commands.config", "print the resolved config (defaults + files + overrides)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jotr", description="Occluded 3D human mesh recovery with JOTR.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from jotr.errors import JOTRError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except JOTRError as exc:
        print(f"jotr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"jotr {args.command}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jotr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
