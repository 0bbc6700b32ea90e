"""`fieldbot export --out FILE.xlsx [--school CODE] [--district CODE] [--with-photos]`: the workbook for the
sector database from the operator's terminal (the same file /xuatfile sends in a chat)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import select

from bot.settings import Settings
from storage.models import District, School
from storage.scope import Scope


class ExportArgsError(Exception):
    """A wrong code or a missing choice: one line for the operator."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="xuất tệp Excel tổng hợp cho CSDL ngành (export the workbook)",
        description="Xuất tệp Excel: Nhu cầu, Tiếp nhận, Bàn giao, Tổng hợp. Không có --school: cả quận/huyện "
        "(--district, hoặc quận/huyện duy nhất). --with-photos: tệp ZIP gồm tệp Excel và thư mục photos/.",
    )
    p.add_argument("--out", type=Path, required=True, help="tệp kết quả, ví dụ tong-hop.xlsx")
    p.add_argument("--school", metavar="MÃ", help="mã trường (school code), ví dụ TH-PHUHOA1")
    p.add_argument("--district", metavar="MÃ", help="mã quận/huyện (district code), ví dụ TDM")
    p.add_argument("--with-photos", action="store_true", help="kèm ảnh bàn giao: ghi tệp .zip")
    p.add_argument("--lang", choices=("vi", "en"), default=None, help="ngôn ngữ tiêu đề (mặc định: vi)")
    p.add_argument("--force", action="store_true", help="ghi đè nếu tệp đã có (overwrite an existing file)")
    p.set_defaults(func=cmd_export)


def resolve_scope(session, *, school: str | None, district: str | None) -> tuple[Scope, str]:
    """The scope and a label for it, from the codes typed on the command line."""
    dist = None
    if district:
        dist = session.execute(select(District).where(District.code == district.strip())).scalar_one_or_none()
        if dist is None:
            known = ", ".join(session.execute(select(District.code).order_by(District.code)).scalars())
            raise ExportArgsError(f"không có quận/huyện mã {district} (có: {known or 'chưa có'})")
    if school:
        sch = session.execute(select(School).where(School.code == school.strip())).scalar_one_or_none()
        if sch is None:
            raise ExportArgsError(f"không có trường mã {school} (xem: fieldbot roster list)")
        if dist is not None and sch.district_id != dist.id:
            raise ExportArgsError(f"trường {school} không thuộc quận/huyện {district}")
        return Scope(district_id=sch.district_id, school_id=sch.id), sch.name
    if dist is None:
        districts = session.execute(select(District).order_by(District.code)).scalars().all()
        if not districts:
            raise ExportArgsError("chưa có dữ liệu: hãy nhập danh sách trước (fieldbot roster import)")
        if len(districts) > 1:
            codes = ", ".join(d.code for d in districts)
            raise ExportArgsError(f"có {len(districts)} quận/huyện ({codes}): chọn một bằng --district MÃ")
        dist = districts[0]
    return Scope(district_id=dist.id), dist.name


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from xlsxwriter.exceptions import FileCreateError

    from bot.app import build_app
    from bot.commands import CliError, os_reason, prepare_output
    from reports.export import write_export
    from storage.db import session_scope

    out: Path = args.out
    if out.suffix.lower() not in (".xlsx", ".zip"):
        raise CliError(f"--out phải là tệp .xlsx (hoặc .zip với --with-photos): {out}")
    if out.suffix.lower() == ".zip" and not args.with_photos:
        raise CliError("tệp .zip chỉ dùng với --with-photos")
    # With photos the file written is a .zip (write_export renames it): check that name.
    final = out.with_suffix(".zip") if args.with_photos else out
    prepare_output(final, force=args.force)
    app = build_app(settings)
    now = app.clock.now()
    with session_scope(app.db) as session:
        try:
            scope, label = resolve_scope(session, school=args.school, district=args.district)
        except ExportArgsError as exc:
            raise CliError(str(exc)) from None
        try:
            result = write_export(
                session,
                scope=scope,
                out=out,
                programme=app.programme,
                now=now,
                with_photos=args.with_photos,
                media_dir=app.media_dir,
                lang=args.lang or settings.language,
            )
        except FileCreateError as exc:  # xlsxwriter wraps the OSError of the file it could not create
            cause = exc.__context__ if isinstance(exc.__context__, OSError) else None
            raise CliError(f"Không ghi được {final}: {os_reason(cause) if cause else exc}") from None
        except OSError as exc:
            raise CliError(f"Không ghi được {final}: {os_reason(exc)}") from None
    print(
        f"Đã ghi {result.path} ({label}): {result.schools} trường, {result.students} học sinh, "
        f"{result.batches} lô máy, {result.handovers} bàn giao."
    )
    if args.with_photos:
        line = f"Ảnh: {result.photos} tệp"
        if result.missing_photos:
            line += f"; {result.missing_photos} ảnh không còn tệp trong {app.media_dir} (ghi chú trong sheet Bàn giao)"
        print(line + ".")
    return 0
