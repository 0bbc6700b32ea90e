"""`fieldbot students erase CODE --school SCHOOL_CODE [--yes]`: erase one pupil on request (storage/erasure.py).

`fieldbot students` belongs to bot/commands/students.py when that module is installed; this module adds its
`erase` subcommand to that parser (or creates a `students` parser holding only `erase`), so the two modules
can be listed in either order in bot/cli.py's COMMAND_MODULES.
"""

from __future__ import annotations

import argparse

from bot.commands import CliError, confirm
from bot.settings import Settings


def _students_subparsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    parser = sub.choices.get("students")
    if parser is None:
        parser = sub.add_parser("students", help="học sinh (pupils)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest="students_command", metavar="VIỆC", required=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = _students_subparsers(sub).add_parser(
        "erase",
        help="xóa vĩnh viễn một học sinh theo yêu cầu (erase one pupil on request)",
        description="Xóa hồ sơ, bàn giao, ảnh, biên bản, thông báo về một học sinh. Nhật ký truy cập chỉ ghi "
        "việc xóa (ai, khi nào, mã nào), không giữ dữ liệu.",
    )
    p.add_argument("code", metavar="MÃ_HS", help="mã định danh của học sinh")
    p.add_argument("--school", required=True, metavar="MÃ", help="mã trường của học sinh (kiểm tra chéo)")
    p.add_argument("--yes", action="store_true", help="không hỏi lại (do not ask for confirmation)")
    p.set_defaults(func=cmd_erase)


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from bot.app import build_app
    from bot.commands.purge import operator
    from storage import erasure
    from storage.db import session_scope
    from storage.models import School

    app = build_app(settings)
    now = app.clock.now()
    who = operator()
    with session_scope(app.db) as session:
        school = session.scalar(select(School).where(School.code == args.school.strip()))
        if school is None:
            raise CliError(f"không có trường mã {args.school} (xem: fieldbot roster list)")
        student = erasure.find_student(session, actor=who, code=args.code)
        if student is None or student.school_id != school.id:
            raise CliError(f"trường {school.code} không có học sinh mã {args.code.strip()}")
        plan = erasure.plan(session, student=student)
        print(
            f"Sẽ xóa vĩnh viễn em {plan.full_name} (mã {plan.code}, lớp {plan.class_name}, {plan.school_name}): "
            f"hồ sơ, {len(plan.handover_ids)} bàn giao, {len(plan.photo_ids)} ảnh, thông báo và tệp liên quan."
        )
        if not args.yes and not confirm(f"Xóa vĩnh viễn em {plan.full_name}? Gõ 'dong y' để tiếp tục: "):
            print("Đã hủy.")
            return 1
        report = erasure.erase(
            session, actor=who, role="operator", student_id=student.id, now=now, media_dir=app.media_dir
        )
    print(
        f"Đã xóa em mã {report.code}: {report.handovers} bàn giao, {report.photos} ảnh, {report.files} tệp, "
        f"{report.notifications} thông báo, {report.audit_events} dòng lịch sử sửa."
    )
    return 0
