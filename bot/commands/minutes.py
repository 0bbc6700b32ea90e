"""`fieldbot minutes --handover CODE --out FILE.pdf` / `fieldbot minutes --school CODE --out FILE.pdf`: printable
minutes (biên bản) from the operator's terminal — one handover's, or every batch and handover of a school, one
sheet per page (the same sheets the bot sends after /bangiao and /nhanmay)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sqlalchemy import select

from bot.settings import Settings

_HANDOVER_CODE = re.compile(r"^(?:BG)?0*(\d{1,9})$", re.IGNORECASE)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "minutes",
        help="in biên bản bàn giao / tiếp nhận ra tệp PDF (printable handover minutes)",
        description="Biên bản (PDF, A4) để in và ký: của một bàn giao (--handover BG000123), hoặc mọi biên bản "
        "tiếp nhận và bàn giao của một trường, mỗi biên bản một trang (--school MÃ).",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--handover", metavar="MÃ", help="mã bàn giao, ví dụ BG000123 (hoặc 123)")
    which.add_argument("--school", metavar="MÃ", help="mã trường (school code), ví dụ TH-PHUHOA1")
    p.add_argument("--out", type=Path, required=True, help="tệp kết quả, ví dụ bien-ban.pdf")
    p.add_argument("--force", action="store_true", help="ghi đè nếu tệp đã có (overwrite an existing file)")
    p.set_defaults(func=cmd_minutes)


def cmd_minutes(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from bot.commands import CliError, os_reason, prepare_output
    from reports.minutes import MinutesNotFound, handover_pdf, handover_sheet, school_pdf, write_pdf
    from storage.db import session_scope
    from storage.models import Handover, School
    from storage.scope import Scope

    out: Path = args.out
    if out.suffix.lower() != ".pdf":
        raise CliError(f"--out phải là tệp .pdf: {out}")
    code = None
    if args.handover is not None:
        m = _HANDOVER_CODE.match(args.handover.strip())
        if m is None:
            raise CliError(f"mã bàn giao không hợp lệ: {args.handover} (ví dụ: BG000123)")
        code = int(m.group(1))
    prepare_output(out, force=args.force)
    app = build_app(settings)
    with session_scope(app.db) as session:
        if code is not None:
            handover = session.get(Handover, code)
            school = session.get(School, handover.school_id) if handover is not None else None
            if handover is None or school is None:
                raise CliError(f"không có bàn giao mã BG{code:06d}")
            try:
                sheet = handover_sheet(
                    session,
                    programme=app.programme,
                    scope=Scope(district_id=school.district_id, school_id=school.id),
                    handover_id=code,
                )
            except MinutesNotFound:
                raise CliError(f"bàn giao BG{code:06d} đã bị rút, không in biên bản") from None
            data, summary = handover_pdf(sheet, programme=app.programme), f"biên bản bàn giao {sheet.code}, 1 trang"
        else:
            school = session.execute(select(School).where(School.code == args.school.strip())).scalar_one_or_none()
            if school is None:
                raise CliError(f"không có trường mã {args.school} (xem: fieldbot roster list)")
            try:
                result = school_pdf(session, programme=app.programme, school_id=school.id)
            except MinutesNotFound:
                raise CliError(f"trường {school.code} chưa có lô máy hay bàn giao nào để in biên bản") from None
            data = result.pdf
            summary = (
                f"{school.name}: {result.receipts} biên bản tiếp nhận, {result.handovers} biên bản bàn giao, "
                f"{result.pages} trang"
            )
    try:
        write_pdf(data, out)
    except OSError as exc:
        raise CliError(f"Không ghi được {out}: {os_reason(exc)}") from None
    print(f"Đã ghi {out} ({summary}).")
    return 0
