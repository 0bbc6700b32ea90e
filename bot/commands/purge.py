"""`fieldbot purge --before DATE [--dry-run] [--yes]`: the retention purge (storage/purge.py).

Prints what it will remove first; without --dry-run it then asks (or takes --yes) and removes it. Counts stay,
so every report adds up to the same totals before and after; a second run finds nothing to remove.
"""

from __future__ import annotations

import argparse
from datetime import datetime, time

from bot.commands import CliError, confirm
from bot.settings import Settings
from core.clock import fmt_date


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "purge",
        help="xóa dữ liệu học sinh quá thời hạn lưu trữ (remove pupil data past its retention)",
        description="Với đăng ký và bàn giao ghi nhận trước NGÀY: xóa ảnh, biên bản, họ tên và SĐT người giám hộ, "
        "ngày sinh, lý do khó khăn; giữ số đếm để mọi báo cáo vẫn khớp. Cũng xóa nhật ký truy cập cũ hơn NGÀY.",
    )
    p.add_argument("--before", required=True, metavar="NGÀY", help="dd/mm/yyyy: dữ liệu ghi nhận trước ngày này")
    p.add_argument("--dry-run", action="store_true", help="chỉ liệt kê, không xóa gì (list only)")
    p.add_argument("--yes", action="store_true", help="không hỏi lại (do not ask for confirmation)")
    p.set_defaults(func=cmd_purge)


def operator() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from storage.db import session_scope
    from storage.purge import plan_purge, purge

    try:
        day = datetime.strptime(args.before.strip(), "%d/%m/%Y").date()
    except ValueError:
        raise CliError(f"--before: ngày không hợp lệ '{args.before}' (cần dd/mm/yyyy, ví dụ 01/01/2024)") from None
    app = build_app(settings)
    now = app.clock.now()
    today = now.astimezone(app.programme.tz).date()
    if day > today:
        raise CliError(f"--before {fmt_date(day)} ở tương lai (hôm nay {fmt_date(today)}): chỉ xóa dữ liệu đã qua")
    before = datetime.combine(day, time.min, tzinfo=app.programme.tz)
    keep_until = app.programme.privacy.keep_until
    if keep_until is not None and day <= keep_until:
        print(
            f"Lưu ý: tệp chương trình giữ dữ liệu đến hết {fmt_date(keep_until)}; "
            f"--before {fmt_date(day)} chỉ xóa dữ liệu ghi nhận trước ngày đó."
        )
    with session_scope(app.db) as session:
        p = plan_purge(session, before=before, media_dir=app.media_dir)
    print(f"Dữ liệu ghi nhận trước {fmt_date(day)} sẽ bị xóa:")
    print(
        f"  • {len(p.students)} đăng ký: {p.birth_dates} ngày sinh, {p.hardship_reasons} lý do khó khăn, "
        f"{p.guardian_names} tên và {p.guardian_phones} SĐT người giám hộ"
    )
    print(f"  • {len(p.handovers)} bàn giao: {p.photo_links} ảnh/biên bản, {len(p.files)} tệp trong {app.media_dir}")
    print(f"  • {p.access_log_rows} dòng nhật ký truy cập")
    print("  Giữ lại: số đếm học sinh, bàn giao, máy — mọi báo cáo vẫn khớp tổng số.")
    if p.empty:
        print("Không có gì để xóa.")
        return 0
    if args.dry_run:
        print("(--dry-run: chưa xóa gì)")
        return 0
    if not args.yes and not confirm("Xóa vĩnh viễn các dữ liệu trên? Gõ 'dong y' để tiếp tục: "):
        print("Đã hủy.")
        return 1
    with session_scope(app.db) as session:
        report = purge(session, before=before, now=now, media_dir=app.media_dir, actor=operator(), dry_run=False)
    print(
        f"Đã xóa: {len(report.plan.students)} đăng ký, ảnh của {len(report.plan.handovers)} bàn giao, "
        f"{report.files_removed} tệp, {report.plan.access_log_rows} dòng nhật ký."
    )
    return 0
