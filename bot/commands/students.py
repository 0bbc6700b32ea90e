"""`fieldbot students template --out FILE.xlsx` and `fieldbot students import FILE --school CODE [--dry-run]`:
the class-list template and import of /maunhap and /nhapds, for the district office's terminal.

The import runs exactly the chat's checks (``conversations.bulk``: /dangky's own fields); with errors it prints
them by line and column, writes the annotated copy and saves nothing; without errors it saves every row in one
transaction as pending registrations the principal reviews in /duyet (unless ``--dry-run``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select

from bot.commands import CliError
from bot.settings import Settings
from core.vocabulary import Role


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("students", help="danh sách học sinh từ tệp Excel (class lists from spreadsheets)")
    s_sub = p.add_subparsers(dest="students_command", metavar="LỆNH", required=True)
    tpl = s_sub.add_parser(
        "template",
        help="ghi tệp mẫu danh sách học sinh (write the class-list template)",
        description="Tệp mẫu như lệnh /maunhap: tiêu đề cột, danh sách chọn, gợi ý ngày, một dòng ví dụ.",
    )
    tpl.add_argument("--out", type=Path, required=True, help="tệp kết quả .xlsx")
    tpl.add_argument("--school", metavar="MÃ", help="mã trường: dòng ví dụ theo cấp học của trường")
    tpl.add_argument("--force", action="store_true", help="ghi đè nếu tệp đã có (overwrite an existing file)")
    tpl.set_defaults(func=cmd_template)
    imp = s_sub.add_parser(
        "import",
        help="nhập danh sách học sinh của một trường (import a class list)",
        description="Kiểm tra như /nhapds (cùng quy tắc với /dangky). Có lỗi: in từng lỗi theo dòng và cột, ghi tệp "
        "có đánh dấu, không lưu gì. Không lỗi: lưu tất cả trong một giao dịch, chờ hiệu trưởng duyệt.",
    )
    imp.add_argument("file", type=Path, help="tệp .xlsx hoặc .csv")
    imp.add_argument("--school", metavar="MÃ", required=True, help="mã trường, ví dụ TH-PHUHOA1")
    imp.add_argument("--dry-run", action="store_true", help="chỉ kiểm tra, không lưu gì")
    imp.add_argument("--by", metavar="SĐT", help="người nhập (SĐT trong danh sách); mặc định: chuyên viên của quận")
    imp.add_argument(
        "--report",
        type=Path,
        help="nơi ghi tệp có đánh dấu lỗi (mặc định: cạnh tệp, tên <tệp>-can-sua.xlsx, ghi đè bản cũ)",
    )
    imp.add_argument("--force", action="store_true", help="ghi đè --report nếu tệp đã có")
    imp.set_defaults(func=cmd_import)


def _school(session, code: str):
    from storage.models import School

    school = session.execute(select(School).where(School.code == code.strip())).scalar_one_or_none()
    if school is None:
        raise CliError(f"không có trường mã {code} (xem: fieldbot roster list)")
    return school


def _actor(session, school, by: str | None, programme):
    """Who the import is recorded as: --by, else the district contact, else the district's first officer."""
    from core.phones import normalize_phone
    from storage.models import District, Staff

    if by:
        try:
            phone = normalize_phone(by)
        except ValueError as exc:
            raise CliError(f"--by: {exc}") from None
        staff = session.execute(select(Staff).where(Staff.phone == phone)).scalar_one_or_none()
        if staff is None or not staff.active:
            raise CliError(f"--by: số {by} không có trong danh sách (hoặc đã ngừng hoạt động)")
        return staff
    district = session.get(District, school.district_id)
    contact = programme.contact_for(district.code) if district else None
    officers = (
        session.execute(
            select(Staff)
            .where(
                Staff.district_id == school.district_id,
                Staff.role == Role.DISTRICT_OFFICER,
                Staff.active.is_(True),
            )
            .order_by(Staff.id)
        )
        .scalars()
        .all()
    )
    if contact is not None:
        for officer in officers:
            if officer.phone == contact.phone_e164:
                return officer
    if not officers:
        raise CliError("quận/huyện của trường chưa có chuyên viên trong danh sách; chỉ định người nhập bằng --by SĐT")
    return officers[0]


def cmd_template(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from bot.commands import prepare_output
    from conversations import bulk
    from storage.db import session_scope

    out: Path = args.out
    if out.suffix.lower() != ".xlsx":
        raise CliError(f"--out phải là tệp .xlsx: {out}")
    prepare_output(out, force=args.force)
    app = build_app(settings)
    with session_scope(app.db) as session:
        school = _school(session, args.school) if args.school else None
        ctx = bulk.check_context(
            session=session,
            programme=app.programme,
            now=app.clock.now(),
            school_id=school.id if school else 0,
            school_level=school.level if school else "TH",
            lang=settings.language,
        )
        bulk.write_template(ctx, out, max_rows=app.programme.imports.max_rows)
    print(f"Đã ghi tệp mẫu {out}.")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from bot.commands import prepare_output
    from conversations import bulk
    from conversations.refusals import refusal
    from core.messages import plain_text
    from storage import students
    from storage.db import session_scope
    from storage.errors import RecordError

    path: Path = args.file
    if not path.is_file():
        raise CliError(f"không tìm thấy tệp {path}")
    if args.report is not None:
        prepare_output(args.report, force=args.force, option="--report")
    app = build_app(settings)
    rules = app.programme.imports
    if path.stat().st_size > rules.max_bytes:
        raise CliError(
            f"tệp {path.name} quá lớn ({path.stat().st_size // 1024} KB; tối đa {rules.max_bytes // 1024} KB)"
        )
    data = path.read_bytes()
    lang = settings.language
    with session_scope(app.db) as session:
        school = _school(session, args.school)
        actor = _actor(session, school, args.by, app.programme)
        try:
            students.check_import_scope(session, actor=actor, school_id=school.id)
        except RecordError as exc:
            raise CliError(f"{actor.full_name}: {plain_text(refusal(exc, lang))}") from None
        ctx = bulk.check_context(
            session=session,
            programme=app.programme,
            now=app.clock.now(),
            school_id=school.id,
            school_level=school.level,
            lang=lang,
        )
        try:
            sheet = bulk.read_sheet(data, file_name=path.name, max_rows=rules.max_rows, max_bytes=rules.max_bytes)
            if not sheet.rows:
                raise CliError(plain_text(bulk.NO_ROWS(lang)))
            checked = bulk.check_sheet(sheet, ctx)
        except bulk.FileRefused as exc:
            raise CliError(plain_text(exc.text(lang))) from None
        for line in bulk.report_lines(checked, lang, limit=None):
            print(plain_text(line))
        if checked.problems:
            report = args.report or path.with_name(bulk.annotated_name(path.name))
            bulk.annotate(data, checked, report, lang=lang)
            print(f"Tệp có đánh dấu lỗi: {report}. Chưa lưu gì.", file=sys.stderr)
            session.rollback()
            return 1
        if args.dry_run:
            print(f"--dry-run: kiểm tra xong {len(checked.rows)} em, chưa lưu gì.")
            session.rollback()
            return 0
        try:
            batch = students.import_students(
                session,
                actor=actor,
                school_id=school.id,
                rows=checked.rows,
                file_name=path.name,
                sha256=bulk.sha256_of(data),
                now=app.clock.now(),
            )
        except RecordError as exc:
            raise CliError(f"{plain_text(refusal(exc, lang))} Không có em nào được lưu.") from None
        consented = sum(1 for r in checked.rows if r.get(bulk.CONSENT) is not None)
        print(
            f"Đã lưu {batch.rows} em vào {school.name} (danh sách #{batch.id}, người nhập {actor.full_name}); "
            f"chờ hiệu trưởng duyệt trong /duyet. Đồng ý của phụ huynh: {consented} em có ngày, "
            f"{batch.rows - consented} em chưa ghi nhận (/dongy)."
        )
    return 0
