"""`fieldbot`: one command, subcommands, --help in each.

Each subcommand is a module of `bot/commands/` and registers itself here; an operator error ends in one Vietnamese line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from bot.commands import CliError
from bot.logs import setup_logging
from bot.settings import SettingsError, load_settings
from core.programme import ProgrammeError
from storage.db import DatabaseUnavailable

# Modules that add subcommands: each has `register(subparsers)`.
COMMAND_MODULES = (
    "bot.commands.roster",
    "bot.commands.chat",
    "bot.commands.run",
    "bot.commands.sweep",
    "bot.commands.export",
    "bot.commands.backup",
    "bot.commands.students",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fieldbot",
        description="fieldbot — chatbot báo cáo chương trình “Sóng và máy tính cho em” "
        "(reporting bot for the 'Internet and computers for you' programme).",
    )
    sub = parser.add_subparsers(dest="command", metavar="LỆNH", required=True)
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a part not installed in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        return int(args.func(args, settings) or 0)
    except (SettingsError, ProgrammeError, DatabaseUnavailable, CliError) as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
