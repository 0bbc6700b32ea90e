"""`fieldbot audit [--since DATE] [--school CODE]`: the access log — who read pupil data, when, what, how much."""

from __future__ import annotations

import argparse
from datetime import datetime, time

from sqlalchemy import select

from bot.commands import CliError
from bot.settings import Settings
from core.clock import fmt_local

WHAT = {
    "summary": "xem tổng hợp",
    "review": "duyệt hồ sơ",
    "export": "xuất tệp (chat)",
    "export_pw": "xuất tệp có mật khẩu (chat)",
    "export_cli": "xuất tệp (dòng lệnh)",
    "backup": "sao lưu",
    "erase": "xóa học sinh",
    "purge": "xóa theo thời hạn",
    "search": "tìm học sinh (/bangiao)",
    "restore": "khôi phục từ bản sao lưu",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="nhật ký truy cập dữ liệu học sinh (who read pupil data)",
        description="In nhật ký truy cập: thời điểm, người, vai trò, việc, phạm vi, số học sinh.",
    )
    p.add_argument("--since", metavar="NGÀY", help="dd/mm/yyyy: từ ngày này")
    p.add_argument("--school", metavar="MÃ", help="mã trường: truy cập dữ liệu của trường này (kể cả cả quận)")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from storage import access_log
    from storage.db import session_scope
    from storage.models import School

    app = build_app(settings)
    tz = app.programme.tz
    since = None
    if args.since:
        try:
            day = datetime.strptime(args.since.strip(), "%d/%m/%Y").date()
        except ValueError:
            raise CliError(f"--since: ngày không hợp lệ '{args.since}' (cần dd/mm/yyyy)") from None
        since = datetime.combine(day, time.min, tzinfo=tz)
    with session_scope(app.db) as session:
        school_id = None
        if args.school:
            school_id = session.scalar(select(School.id).where(School.code == args.school.strip()))
            if school_id is None:
                raise CliError(f"không có trường mã {args.school} (xem: fieldbot roster list)")
        rows = access_log.entries(session, since=since, school_id=school_id)
    if not rows:
        print("Nhật ký truy cập trống (trong phạm vi đã chọn).")
        return 0
    print("Thời điểm         | Người | Vai trò | Việc | Phạm vi | Số HS")
    for r in rows:
        print(f"{fmt_local(r.at, tz)} | {r.actor} | {r.role} | {WHAT.get(r.what, r.what)} | {r.scope} | {r.pupils}")
    print(f"{len(rows)} dòng.")
    return 0
