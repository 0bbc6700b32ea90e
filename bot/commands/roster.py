"""Operator commands: `fieldbot db upgrade`, `fieldbot roster import|list|code`."""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import select

from bot.app import build_app
from bot.commands import CliError
from bot.settings import Settings
from core.phones import display_phone, normalize_phone
from core.vocabulary import role_label
from storage.db import session_scope
from storage.models import District, School, Staff
from storage.roster import RosterError, RosterProblems, import_roster


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="cơ sở dữ liệu (database)")
    db_sub = db.add_subparsers(dest="db_command", metavar="LỆNH", required=True)
    up = db_sub.add_parser("upgrade", help="áp dụng các bản chuyển đổi lược đồ (apply migrations)")
    up.set_defaults(func=cmd_db_upgrade)

    roster = sub.add_parser("roster", help="danh sách trường và cán bộ (roster)")
    r_sub = roster.add_subparsers(dest="roster_command", metavar="LỆNH", required=True)
    imp = r_sub.add_parser(
        "import",
        help="nhập danh sách từ tệp CSV/XLSX (import a CSV or XLSX roster)",
        description="Cột: district_code,district_name,school_code,school_name,school_level,role,full_name,phone,email. "
        "Tệp có bất kỳ dòng sai nào sẽ không được nhập (all-or-nothing).",
    )
    imp.add_argument("file", type=Path, help="tệp .csv hoặc .xlsx")
    imp.set_defaults(func=cmd_roster_import)
    ls = r_sub.add_parser("list", help="in danh sách đã nhập (print the loaded roster)")
    ls.add_argument("--all", action="store_true", help="kể cả người đã ngừng hoạt động (include deactivated)")
    ls.set_defaults(func=cmd_roster_list)
    code = r_sub.add_parser("code", help="tạo mã liên kết một lần cho một người (one-time linking code)")
    code.add_argument("phone", help="số điện thoại trong danh sách")
    code.set_defaults(func=cmd_roster_code)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    app = build_app(settings)
    print(f"Cơ sở dữ liệu đã ở phiên bản mới nhất: {app.db.url.render_as_string(hide_password=True)}")
    return 0


def cmd_roster_import(args: argparse.Namespace, settings: Settings) -> int:
    app = build_app(settings)
    try:
        with session_scope(app.db) as session:
            result = import_roster(session, path=args.file, now=app.clock.now())
    except RosterError as exc:
        raise CliError(str(exc)) from None
    except RosterProblems as exc:
        print(exc)  # every bad row, for the person fixing the spreadsheet
        raise CliError(
            f"Không nhập tệp {args.file.name}: có {len(exc.problems)} dòng sai, liệt kê ở trên (chưa có gì thay đổi)."
        ) from None
    print(
        f"Đã nhập {args.file.name}: {result.districts} quận/huyện, {result.schools} trường; "
        f"{result.created} người mới, {result.updated} cập nhật, {result.unchanged} không đổi, "
        f"{result.deactivated} ngừng hoạt động."
    )
    return 0


def cmd_roster_list(args: argparse.Namespace, settings: Settings) -> int:
    app = build_app(settings)
    with session_scope(app.db) as s:
        districts = {d.id: d for d in s.exec(select(District)).scalars()}
        schools = {sc.id: sc for sc in s.exec(select(School)).scalars()}
        q = select(Staff).order_by(Staff.district_id, Staff.school_id, Staff.role, Staff.full_name)
        if not args.all:
            q = q.where(Staff.active.is_(True))
        people = s.exec(q).scalars().all()
    if not people:
        print("Chưa có danh sách. Dùng: fieldbot roster import examples/roster.csv")
        return 0
    for st in people:
        where = schools[st.school_id].name if st.school_id else districts[st.district_id].name
        state = "" if st.active else "  [ngừng hoạt động]"
        print(f"{display_phone(st.phone):>14}  {role_label(st.role):<22} {st.full_name:<24} {where}{state}")
    print(f"Tổng: {len(people)} người, {len(schools)} trường.")
    return 0


def cmd_roster_code(args: argparse.Namespace, settings: Settings) -> int:
    from conversations.linking import issue_link_code

    app = build_app(settings)
    try:
        phone = normalize_phone(args.phone)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with session_scope(app.db) as s:
        staff = s.exec(select(Staff).where(Staff.phone == phone)).scalar_one_or_none()
        if staff is None or not staff.active:
            raise CliError(f"{args.phone} không có trong danh sách đang hoạt động (xem: fieldbot roster list).")
        code = issue_link_code(s, staff_id=staff.id, created_by=None, now=app.clock.now())
    print(f"Mã liên kết cho {staff.full_name}: {code} (dùng một lần, hết hạn sau 15 phút).")
    return 0
