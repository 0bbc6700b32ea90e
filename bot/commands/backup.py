"""`fieldbot backup` and `fieldbot restore`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.commands import CliError
from bot.settings import Settings
from storage.backup import BackupError, backup, restore


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backup", help="sao lưu cơ sở dữ liệu (back up the database)")
    b.add_argument("--out", type=Path, required=True, help="tệp sao lưu sẽ tạo (backup file to write)")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="khôi phục từ tệp sao lưu; hãy dừng bot trước (restore; stop the bot first)")
    r.add_argument("file", type=Path, help="tệp sao lưu (backup file)")
    r.add_argument("--yes", action="store_true", help="không hỏi lại (do not ask for confirmation)")
    r.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        size = backup(settings.database_url, args.out)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    _log_backup(settings)
    print(f"Đã sao lưu vào {args.out} ({size / 1024:.0f} KB).")
    return 0


def _log_backup(settings: Settings) -> None:
    """A backup holds every pupil: one access-log row (after the copy, so the copy does not hold it)."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from bot.app import build_app
    from bot.commands.purge import operator
    from storage.access_log import BACKUP, record_access
    from storage.db import session_scope
    from storage.models import Student

    app = build_app(settings, migrate=False)
    try:
        with session_scope(app.db) as session:
            pupils = int(session.scalar(select(func.count()).select_from(Student)) or 0)
            record_access(
                session, actor=operator(), role="operator", what=BACKUP, scope="all", pupils=pupils, now=app.clock.now()
            )
    except SQLAlchemyError as exc:  # a database not yet upgraded (no access_log): the backup itself is done
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        print(f"Lưu ý: chưa ghi được nhật ký truy cập ({reason}); chạy fieldbot db upgrade.", file=sys.stderr)
    finally:
        app.db.dispose()


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        answer = input(f"Khôi phục sẽ GHI ĐÈ dữ liệu hiện tại bằng {args.file}. Gõ 'dong y' để tiếp tục: ")
        if answer.strip().lower() not in ("dong y", "đồng ý"):
            print("Đã hủy.")
            return 1
    try:
        restore(settings.database_url, args.file)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f"Đã khôi phục từ {args.file}.")
    return 0
