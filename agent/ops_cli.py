"""Operator commands that live outside agent/cli.py: `keys` and `backup`.

agent/cli.py dispatches `trading-agent NAME ...` here for every NAME in OPS_COMMANDS; an
argparse-subcommand CLI can call `register(subparsers)` instead (each parser sets `handler`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import keys_cli

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3


def _backup_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--data-dir", type=Path, required=True, help="the agent's data folder")
    p.add_argument("--to", type=Path, required=True, metavar="PATH",
                   help="a new (or empty) folder to write the backup into")
    return p


def backup_command(args: argparse.Namespace) -> int:
    from persistence.backup import BackupError, backup

    try:
        result = backup(args.data_dir, args.to)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in result.summary():
        print(line)
    return EXIT_OK


def _backup_main(argv: list[str]) -> int:
    return backup_command(_backup_parser(argparse.ArgumentParser(
        prog="trading-agent backup", description="copy trades.db consistently (also while the agent "
        "runs), state.json and config.json")).parse_args(argv))


OPS_COMMANDS = {"keys": keys_cli.main, "backup": _backup_main}
OPS_HELP = {"keys": "API keys and the Telegram token in the OS keyring (set, show, delete, import)",
            "backup": "consistent backup of a data folder, also while the agent runs"}


def dispatch(name: str, argv: list[str]) -> int:
    return OPS_COMMANDS[name](argv)


def register(subparsers) -> None:
    keys_cli.register(subparsers)
    p = subparsers.add_parser("backup", help="back the data folder up while the agent runs")
    _backup_parser(p).set_defaults(handler=backup_command)
