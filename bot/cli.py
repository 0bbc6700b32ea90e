"""`fieldbot`: one command, subcommands, --help in each.

Each subcommand is a module of `bot/commands/` and registers itself here; an operator error ends in one Vietnamese line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from importlib import import_module

from bot.commands import CliError, os_error_text
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
    "bot.commands.minutes",
    "bot.commands.backup",
    "bot.commands.web",
    "bot.commands.students",
    "bot.commands.audit",
    "bot.commands.purge",
    "bot.commands.erase",  # after bot.commands.students: adds `students erase` to its parser
)
# Commands whose log lines are their output (a server); the others print their own result and keep the
# terminal to it: WARNING and above unless -v or FIELDBOT_LOG_LEVEL asks for more.
LOGGING_COMMANDS = frozenset({"run"})

# argparse's English error messages (Python 3.11 to 3.13 wordings), in the order they are tried.
_ERRORS_VI = (
    (re.compile(r"^the following arguments are required: (.+)$"), r"thiếu tham số bắt buộc: \1"),
    (
        re.compile(r"^argument (.+?): invalid choice: (.+?) \(choose from (.+)\)$"),
        r"\1: không có lựa chọn \2 (chọn một trong: \3)",
    ),
    (re.compile(r"^argument (.+?): expected one argument$"), r"\1 cần một giá trị"),
    (re.compile(r"^argument (.+?): expected (.+) arguments?$"), r"\1 cần \2 giá trị"),
    (re.compile(r"^argument (.+?): invalid (\w+) value: (.+)$"), r"\1: giá trị không hợp lệ \3"),
    (re.compile(r"^argument (.+?): ignored explicit argument (.+)$"), r"\1 không nhận giá trị \2"),
    (re.compile(r"^argument (.+?): not allowed with argument (.+)$"), r"\1 không dùng cùng với \2"),
    (re.compile(r"^unrecognized arguments: (.+)$"), r"tham số không nhận ra: \1"),
    (re.compile(r"^ambiguous option: (.+?) could match (.+)$"), r"tùy chọn \1 chưa rõ: có thể là \2"),
    (re.compile(r"^argument (.+?): (.+)$"), r"\1: \2"),
)


def translate_error(message: str) -> str:
    message = " ".join(message.split())
    for pattern, replacement in _ERRORS_VI:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


class _HelpFormatter(argparse.HelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):
        return super().add_usage(usage, actions, groups, "Cách dùng: " if prefix is None else prefix)


class ViArgumentParser(argparse.ArgumentParser):
    """argparse speaking Vietnamese: usage and headings translated; an error is one line and exit status 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "tham số"
        self._optionals.title = "tùy chọn"
        self.add_argument(
            "-h", "--help", action="help", default=argparse.SUPPRESS, help="in hướng dẫn này rồi thoát (show help)"
        )

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"Lỗi: {translate_error(message)} (xem: {self.prog} --help)\n")


def _add_verbose(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,  # a subcommand's own -v must not reset the top one
        help="in cả dòng nhật ký INFO (show INFO log lines)",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child, top=False)


def build_parser() -> argparse.ArgumentParser:
    parser = ViArgumentParser(
        prog="fieldbot",
        description="fieldbot — chatbot báo cáo chương trình “Sóng và máy tính cho em” "
        "(reporting bot for the 'Internet and computers for you' programme).",
    )
    sub = parser.add_subparsers(dest="command", metavar="LỆNH", required=True, title="lệnh")
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a part not installed in this build
            raise
        module.register(sub)
    _add_verbose(parser, top=True)
    return parser


def log_level(args: argparse.Namespace, settings) -> str:
    configured = settings.log_level.upper()
    if args.command in LOGGING_COMMANDS or "log_level" in settings.model_fields_set:
        level = configured
    else:
        level = "WARNING"
    if getattr(args, "verbose", False) and logging.getLevelName(level) > logging.INFO:
        level = "INFO"
    return level


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(log_level(args, settings))
        return int(args.func(args, settings) or 0)
    except (SettingsError, ProgrammeError, DatabaseUnavailable, CliError) as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path the operator gave (or configured) that cannot be used: one line, not a traceback.
        print(f"Lỗi: {os_error_text(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
