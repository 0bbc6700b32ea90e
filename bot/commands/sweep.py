"""`fieldbot sweep --now 2021-11-21T08:00:00+07:00 [--dry-run]`: one sweep as if at that moment.

Operators use it to see what the bot will chase (``--dry-run`` records nothing) or to push reminders out
by hand; end-to-end tests use it to travel in time. Without ``--dry-run`` it records, then delivers over
the configured channels and SMTP, exactly like one cycle of `fieldbot run` (and takes the same lease, on
the real clock, so it never runs alongside a running bot's sweep).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections import Counter
from datetime import datetime, timedelta

from bot.settings import Settings
from core.clock import Clock, FixedClock, SystemClock, fmt_local
from core.messages import plain_text
from scheduler.context import Candidate
from scheduler.rules import title

PREVIEW = 110


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="quét nhắc việc một lần (run one reminder/escalation sweep)",
        description="Tìm việc đến hạn hoặc trễ hạn tại một thời điểm, ghi vào hàng đợi thông báo và gửi đi. "
        "(Find what is due or late at a moment, record it in the outbox and deliver it.)",
    )
    p.add_argument(
        "--now",
        metavar="ISO8601",
        help="thời điểm giả định, ví dụ 2021-11-21T08:00:00+07:00; không có múi giờ thì hiểu theo "
        "múi giờ của chương trình (the moment to sweep at; default: now)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="chỉ liệt kê, không ghi và không gửi gì (list only: record and send nothing)",
    )
    p.set_defaults(func=cmd_sweep)


def parse_now(text: str, tz) -> datetime:
    from bot.commands import CliError

    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"--now: thời điểm không hợp lệ '{text}' (ví dụ: 2021-11-21T08:00:00+07:00)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    return at


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from core.programme import load_programme

    programme = load_programme(settings.programme)
    clock: Clock = FixedClock(parse_now(args.now, programme.tz)) if args.now else SystemClock()
    app = build_app(settings, clock=clock)
    if args.dry_run:
        from scheduler.sweep import sweep

        result = sweep(app.db, programme=app.programme, now=clock.now(), dry_run=True)
        _print_found(result, app.programme, mode=MODE_DRY_RUN)
        return 0
    return asyncio.run(_sweep_and_deliver(app, clock))


async def _sweep_and_deliver(app, clock: Clock) -> int:
    from scheduler import lease
    from scheduler.service import SchedulerService

    senders, closers = await _senders(app.settings)
    mailer = app.mailer()
    holder = f"cli:{socket.gethostname()}:{os.getpid()}"
    service = SchedulerService(
        db=app.db,
        programme=app.programme,
        clock=clock,
        senders=senders,
        mailer=mailer,
        holder=holder,
        lease_clock=SystemClock(),
        lease_ttl=timedelta(seconds=app.settings.sweep_lease_seconds),
    )
    deliver = bool(senders) or mailer is not None
    try:
        # With no channel and no SMTP configured here, record only: `fieldbot run` (configured) delivers.
        report = await service.run_cycle(deliver=deliver)
    finally:
        for close in closers:
            await close()
    if report is None:
        other = lease.current_holder(app.db, now=SystemClock().now())
        print(
            f"Một tiến trình khác đang quét và gửi nhắc việc ({other}); thử lại sau vài phút. "
            "(Another process holds the sweeper lease.)"
        )
        return 1
    await asyncio.to_thread(lease.release, app.db, holder=holder)  # a running bot may continue at once
    _print_found(report.sweep, app.programme, mode=MODE_DELIVER if deliver else MODE_RECORD)
    if not deliver:
        print(
            "Chưa gửi: chưa cấu hình kênh gửi nào (FIELDBOT_TELEGRAM_TOKEN, FIELDBOT_ZALO_TOKEN, FIELDBOT_SMTP_URL). "
            "Thông báo nằm trong hàng đợi; `fieldbot run` có cấu hình kênh sẽ gửi. (Not sent: no channel configured.)"
        )
        return 0
    _print_sent(report.delivery, app, clock, channels=sorted(senders))
    return 0


async def _senders(settings: Settings):
    senders, closers = {}, []
    if settings.telegram_token is not None:
        from telegram import Bot
        from telegram.error import TelegramError

        from bot.telegram_sender import TelegramSender

        api = settings.telegram_api_url
        bot = Bot(settings.telegram_token.get_secret_value(), base_url=f"{api}/bot", base_file_url=f"{api}/file/bot")
        try:
            await bot.initialize()
        except TelegramError as exc:
            # Recorded anyway; Telegram messages stay in the outbox for the next sweep or `fieldbot run`.
            print(
                f"Không kết nối được Telegram ({api}): {exc}. Tin Telegram sẽ được gửi lại sau. "
                "(Telegram unreachable: its messages wait in the outbox.)"
            )
        else:
            senders["telegram"] = TelegramSender.sharing(bot, processes=settings.processes)
            closers.append(bot.shutdown)
    if settings.zalo_token is not None:
        from bot.zalo.sender import ZaloSender

        zalo = ZaloSender.from_settings(settings)
        senders["zalo"] = zalo
        closers.append(zalo.aclose)
    return senders, closers


MODE_DRY_RUN = "chạy thử: không ghi, không gửi (dry run)"
MODE_DELIVER = "ghi vào hàng đợi và gửi (record and deliver)"
MODE_RECORD = "chỉ ghi vào hàng đợi, chưa gửi: chưa cấu hình kênh gửi (record only: no channel configured)"


def _print_found(result, programme, *, mode: str) -> None:
    print(f"Quét lúc {fmt_local(result.now, programme.tz)} ({programme.programme.timezone}) — {mode}")
    old = len(result.found) - len(result.created)
    print(
        f"Tìm thấy {len(result.found)} việc đến hạn hoặc trễ hạn: {len(result.created)} mới, {old} đã ghi từ trước; "
        f"{len(result.superseded)} nhắc việc cũ bỏ qua (found {len(result.found)}, new {len(result.created)}, "
        f"superseded {len(result.superseded)})."
    )
    if result.created:
        print("Mới (new):")
    for c in result.created:
        print("  " + _describe(c))
    for key in result.superseded:
        print(f"  bỏ qua (superseded): {key}")


def _describe(c: Candidate) -> str:
    who = c.recipient.name or c.recipient.email or "?"
    if c.recipient.staff_id is not None and c.recipient.email:
        who += f" + email {c.recipient.email}"
    elif c.recipient.staff_id is None:
        who = f"email {c.recipient.email}"
    kind = "bản tin" if c.rule == "digest" else "báo cáo vượt cấp" if c.escalation else "nhắc việc"
    text = " ".join(plain_text(c.line).split()) or "(đã tính trước)"
    if len(text) > PREVIEW:
        text = text[: PREVIEW - 1] + "…"
    return f"[{title(c.rule)} · {kind} · {c.stage}] → {who}: {text}"


def _print_sent(delivery, app, clock: Clock, *, channels: list[str]) -> None:
    from sqlalchemy import func, select

    from core.vocabulary import NotificationStatus
    from storage.db import session_scope
    from storage.models import Notification

    by_channel = Counter(ch for g in delivery.groups for ch in g.channels)
    per = ", ".join(f"{ch} {n}" for ch, n in sorted(by_channel.items())) or "-"
    print(
        f"Đã gửi {delivery.messages} tin ({per}); thông báo: {delivery.rows_sent} đã gửi, "
        f"{delivery.rows_retrying} chờ gửi lại, {delivery.rows_failed} không gửi được "
        f"(channels configured: {', '.join(channels) or 'none'}; e-mail: {'yes' if app.mailer() else 'no'})."
    )
    mark = {"sent": "✓", "retry": "…", "failed": "✗"}
    for g in delivery.groups:
        via = ", ".join(g.channels) or "-"
        line = f"  {mark[g.status]} {g.recipient} — {title(g.rule)} ({g.items} mục) qua {via}"
        if g.error:
            line += f": {g.error}"
        print(line)
    with session_scope(app.db) as s:
        waiting = s.execute(
            select(func.count(), func.min(Notification.next_attempt_at)).where(
                Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at > clock.now()
            )
        ).one()
    if waiting[0]:
        print(
            f"Đang chờ gửi: {waiting[0]} thông báo, sớm nhất lúc {fmt_local(waiting[1], app.programme.tz)} "
            "(giờ yên lặng hoặc gửi lại sau lỗi; quiet hours or retries)."
        )
