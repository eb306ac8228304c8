"""``jotr config``: print the resolved configuration."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", action="append", default=[], help="YAML file or shipped config name (repeatable)"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    from jotr.config import ConfigError, dump_config, load_config
    from jotr.errors import InputError

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    print(dump_config(cfg), end="")
    return 0
