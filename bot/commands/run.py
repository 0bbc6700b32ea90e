"""`fieldbot run`: serve every configured channel and run the scheduler until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from bot.app import build_app
from bot.commands import CliError
from bot.run import serve
from bot.settings import Settings

NO_CHANNEL = (
    "Chưa cấu hình kênh nào. Đặt FIELDBOT_TELEGRAM_TOKEN (mã bot từ @BotFather) và/hoặc FIELDBOT_ZALO_TOKEN "
    "trong môi trường hoặc tệp .env rồi chạy lại; hoặc thử ngay trong cửa sổ dòng lệnh: "
    "fieldbot chat --phone <số điện thoại trong danh sách>"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="chạy bot: Telegram, Zalo và bộ nhắc việc (run the bot)")
    p.add_argument(
        "--no-scheduler", action="store_true", help="không chạy nhắc việc trong tiến trình này (another process sweeps)"
    )
    p.add_argument(
        "--role",
        choices=("primary", "worker"),
        help="primary: đăng ký webhook và chạy nhắc việc; worker: chỉ trả lời tin nhắn proxy chuyển tới "
        "(default: FIELDBOT_ROLE, else primary)",
    )
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.telegram_token is None and settings.zalo_token is None and not settings.web_listen:
        raise CliError(NO_CHANNEL)
    if settings.telegram_webhook_url and settings.telegram_webhook_secret is None:
        # Without the secret anyone who finds the URL could post fake updates as any teacher.
        raise CliError("FIELDBOT_TELEGRAM_WEBHOOK_URL cần có FIELDBOT_TELEGRAM_WEBHOOK_SECRET (webhook needs a secret)")
    if settings.zalo_token is not None:
        from bot.zalo.webhook import ZaloConfigError, validate_webhook

        secret = settings.zalo_webhook_secret.get_secret_value() if settings.zalo_webhook_secret else None
        try:
            validate_webhook(settings.zalo_webhook_url, secret)
        except ZaloConfigError as exc:
            raise CliError(str(exc)) from None
    role = getattr(args, "role", None) or settings.role
    if role == "worker" and settings.telegram_token is not None and not settings.telegram_webhook_url:
        # Two pollers on one bot end each other with 409: workers exist only behind a webhook proxy.
        raise CliError(
            "FIELDBOT_ROLE=worker cần FIELDBOT_TELEGRAM_WEBHOOK_URL (a worker serves the webhook behind a proxy)"
        )
    if role == "worker" and settings.zalo_token is not None and not settings.zalo_webhook_url:
        # Polling is one process's job (two would share out the updates): workers serve the primary's webhook.
        raise CliError(
            "FIELDBOT_ROLE=worker cần FIELDBOT_ZALO_WEBHOOK_URL (a worker serves Zalo's webhook behind the proxy)"
        )
    app = build_app(settings)
    scheduler = not args.no_scheduler and role == "primary"
    asyncio.run(serve(app, scheduler=scheduler, primary=role == "primary", freeze=True))
    return 0
