"""`fieldbot chat`: the conversations in a terminal, as a roster person."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.app import build_app
from bot.commands import CliError
from bot.console import CHANNEL, ConsoleChannel, ConsoleSender, stdin_lines
from bot.settings import Settings
from core.phones import normalize_phone
from scheduler.delivery import Deliverer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="trò chuyện với bot trong cửa sổ dòng lệnh (chat in the terminal)",
        description="Đóng vai người có số điện thoại PHONE trong danh sách. Gõ số để chọn; "
        "/anh ĐƯỜNG_DẪN để gửi ảnh; /thoat để thoát.",
    )
    p.add_argument("--phone", required=True, help="số điện thoại trong danh sách (roster phone)")
    p.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    try:
        normalize_phone(args.phone)  # a typo is said once, before the database is even opened
    except ValueError as exc:
        raise CliError(f"--phone: {exc} (ví dụ: --phone 0901000002)") from None
    if sys.stdin is None or sys.stdin.closed:
        raise CliError("fieldbot chat đọc tin nhắn từ bàn phím (stdin), nhưng stdin đã đóng.")
    app = build_app(settings)
    if settings.log_level == "INFO":
        logging.getLogger().setLevel(logging.WARNING)  # the terminal is the chat: keep log lines out of it
    engine = app.conversation_engine()
    try:
        staff = engine.link_directly(
            channel=CHANNEL, external_id=f"console:{args.phone}", chat_id="console", phone=args.phone
        )
    except LookupError as exc:
        raise CliError(str(exc)) from None
    print(f"Xin chào {staff.full_name}! Gõ /menu để bắt đầu, /thoat để thoát.")
    sender = ConsoleSender()
    deliverer = Deliverer(
        db=app.db, programme=app.programme, clock=app.clock, senders={CHANNEL: sender}, mailer=app.mailer()
    )

    async def inbox():
        # Only this person's messages: the others stay in the outbox for `fieldbot run` to deliver.
        await deliverer.deliver_due(recipient_id=staff.id)
        return sender.take()

    console = ConsoleChannel(
        engine.handle, user_id=f"console:{args.phone}", clock=app.clock, media_dir=app.media_dir, inbox=inbox
    )
    asyncio.run(console.run(stdin_lines(), sys.stdout, first="/menu"))
    return 0
