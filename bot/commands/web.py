"""`fieldbot web link PHONE`: print a one-time sign-in link for the web view (the same link /web sends in a
chat). `fieldbot web serve`: the web view alone (`fieldbot run` serves it too when FIELDBOT_WEB_LISTEN is set)."""

from __future__ import annotations

import argparse

from bot.commands import CliError
from bot.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="trang web theo dõi tiến độ (web view): link, serve")
    web_sub = p.add_subparsers(dest="web_command", metavar="VIỆC", required=True)
    link = web_sub.add_parser(
        "link",
        help="in liên kết đăng nhập một lần cho một người trong danh sách (one-time sign-in link)",
        description="In liên kết đăng nhập dùng một lần, hết hạn sau 10 phút, cho người có số điện thoại PHONE.",
    )
    link.add_argument("phone", metavar="PHONE", help="số điện thoại trong danh sách nhân sự, ví dụ 0912 345 678")
    link.set_defaults(func=cmd_link)
    serve = web_sub.add_parser("serve", help="chỉ chạy trang web (serve the web view only)")
    serve.add_argument("--listen", default=None, help="host:port (mặc định FIELDBOT_WEB_LISTEN hoặc 127.0.0.1:8080)")
    serve.set_defaults(func=cmd_serve)


def cmd_link(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_app
    from bot.web import sign_in_url
    from core.phones import normalize_phone
    from storage.db import session_scope
    from storage.people import find_staff_by_phone
    from storage.scope import OutOfScope, Scope
    from storage.web import create_link

    try:
        phone = normalize_phone(args.phone)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    app = build_app(settings)
    base = settings.web_public_url or "http://127.0.0.1:8080"
    with session_scope(app.db) as session:
        staff = find_staff_by_phone(session, phone=phone)
        if staff is None or not staff.active:
            raise CliError(
                f"không có người nào đang hoạt động với số {args.phone} trong danh sách (fieldbot roster list)"
            )
        try:
            Scope.for_staff(staff)
        except OutOfScope:
            raise CliError(f"{staff.full_name} chưa thuộc trường, quận/huyện hay tỉnh nào trong danh sách") from None
        token = create_link(session, staff_id=staff.id, now=app.clock.now())
    print(f"Liên kết đăng nhập cho {staff.full_name} (dùng một lần, trong 10 phút):")
    print(sign_in_url(base, token))
    if not settings.web_listen:
        print("Trang web chạy khi đặt FIELDBOT_WEB_LISTEN (fieldbot run) hoặc bằng: fieldbot web serve")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from bot.app import build_app
    from bot.run import serve_web_only

    listen = args.listen or settings.web_listen or "127.0.0.1:8080"
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise CliError(f"--listen phải có dạng host:port: {listen}")
    app = build_app(settings)
    asyncio.run(serve_web_only(app, host=host or "127.0.0.1", port=int(port)))
    return 0
