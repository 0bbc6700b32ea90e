"""`fieldbot backup` and `fieldbot restore`.

A restore checks the file first (a fieldbot backup of a schema this version can migrate), then asks (or
needs --yes), saves the current database beside it, restores, and migrates to the current schema. Every
refusal is one line and leaves the database as it was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.commands import CliError, confirm, prepare_output
from bot.settings import Settings
from core.clock import SystemClock
from storage.backup import BackupError, backup, check_target, inspect_backup, restore


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "backup",
        help="sao lưu cơ sở dữ liệu (back up the database)",
        description="Sao lưu toàn bộ cơ sở dữ liệu vào một tệp, kể cả khi bot đang chạy. "
        "(Back up the whole database to a file, even while the bot runs.)",
    )
    b.add_argument("--out", type=Path, required=True, metavar="TỆP", help="tệp sao lưu sẽ tạo (backup file to write)")
    b.add_argument("--force", action="store_true", help="ghi đè nếu tệp đã có (overwrite an existing file)")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser(
        "restore",
        help="khôi phục từ tệp sao lưu; hãy dừng bot trước (restore; stop the bot first)",
        description="Kiểm tra tệp sao lưu, lưu dữ liệu hiện tại bên cạnh (để hoàn tác) rồi khôi phục. "
        "(Checks the backup, saves the current data beside it so it can be undone, then restores.)",
    )
    r.add_argument("file", type=Path, metavar="TỆP", help="tệp sao lưu (backup file)")
    r.add_argument("--yes", action="store_true", help="không hỏi lại (do not ask for confirmation)")
    r.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    out: Path = args.out
    try:
        check_target(settings.database_url, out)  # before --force: never write over the live database
        prepare_output(out, force=args.force)
        size = backup(settings.database_url, out)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    _log_backup(settings)
    print(f"Đã sao lưu vào {out} ({size / 1024:.0f} KB).")
    return 0


def _log_backup(settings: Settings) -> None:
    """A backup holds every pupil: one access-log row (after the copy, so the copy does not hold it). Needs
    only the database: a backup works whatever the programme file or the media folder say."""
    from sqlalchemy.exc import SQLAlchemyError

    from storage.access_log import BACKUP
    from storage.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        _log_whole_database(engine, what=BACKUP, scope="all")
    except SQLAlchemyError as exc:  # a database not yet upgraded (no access_log): the backup itself is done
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        print(f"Lưu ý: chưa ghi được nhật ký truy cập ({reason}); chạy fieldbot db upgrade.", file=sys.stderr)
    finally:
        engine.dispose()


def _log_whole_database(engine, *, what: str, scope: str) -> None:
    """One access-log row for the operator's read of every pupil at once (a backup, a restore)."""
    from sqlalchemy import func, select

    from bot.commands.purge import operator
    from storage.access_log import record_access
    from storage.db import session_scope
    from storage.models import Student

    with session_scope(engine) as session:
        pupils = int(session.scalar(select(func.count()).select_from(Student)) or 0)
        record_access(
            session, actor=operator(), role="operator", what=what, scope=scope, pupils=pupils, now=SystemClock().now()
        )


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database_url
    try:
        info = inspect_backup(url, args.file)  # before asking anything: the file must be a fieldbot backup
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if not args.yes:
        question = (
            f"Khôi phục sẽ GHI ĐÈ toàn bộ dữ liệu hiện tại bằng {args.file} (dữ liệu hiện tại được lưu lại "
            "bên cạnh trước). Gõ 'dong y' để tiếp tục: "
        )
        if not confirm(question):
            print("Đã hủy, chưa có gì thay đổi.")
            return 1
    try:
        result = restore(url, info.path, now=SystemClock().now())
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if result.saved_to is not None:
        print(f"Dữ liệu trước khi khôi phục đã lưu ở {result.saved_to} (hoàn tác: fieldbot restore {result.saved_to}).")
    from storage.access_log import RESTORE
    from storage.db import make_engine, upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)  # an older backup is brought to the current schema now, not at the next start
        # The restored pupil data is live again: its own access log says who restored it, from which file.
        _log_whole_database(engine, what=RESTORE, scope=f"file:{Path(args.file).name}")
    finally:
        engine.dispose()
    print(f"Đã khôi phục từ {args.file} (lược đồ {info.revision}).")
    return 0
