"""Zalo end to end: the fake Zalo platform on loopback, the real Zalo service (polling), the real conversation
engine and database (SQLite and PostgreSQL). People type, pick options by number, send photos as URLs;
they link by an emailed code (a local SMTP server) or by their principal's code; reminders reach them.
"""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import date, datetime, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from bot.settings import Settings
from bot.zalo import ZaloService
from bot.zalo.api import ZaloApi
from bot.zalo.sender import ZaloSender
from conversations.engine import ConversationEngine
from conversations.linking import issue_link_code
from core.clock import FixedClock
from core.vocabulary import DeviceType, NotificationStatus, ReviewStatus, Source
from scheduler.delivery import Deliverer
from scheduler.email import SmtpMailer
from scheduler.sweep import sweep
from storage import receipts
from storage.db import session_scope
from storage.models import ChatIdentity, Handover, HandoverPhoto, Student
from storage.photos import PhotoStore
from tests.factories import add_handover, link, local, rows, submit_report
from tests.fakes.zalo_api import TOKEN, FakeZaloApi, zalo_fake  # noqa: F401 (fixture)
from tests.photo_factory import phone_jpeg

NUMBERED = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)


class ZaloWorld:
    """The Zalo service in polling mode around a real engine; ``say`` waits until the update is handled."""

    def __init__(self, fake: FakeZaloApi, engine: ConversationEngine, tmp_path: Path) -> None:
        self.fake = fake
        settings = Settings(
            _env_file=None,
            zalo_token=SecretStr(TOKEN),
            zalo_api_url=fake.api_url,
            media_dir=tmp_path / "media",
            zalo_webhook_listen="127.0.0.1:0",
            public_media_url="http://127.0.0.1:1/media",
        )
        self.service = ZaloService(settings=settings, engine=engine, poll_timeout=5)
        self.stop = asyncio.Event()
        self.handled = 0
        self._changed = asyncio.Condition()
        original = self.service.channel.process

        async def counted(update) -> None:
            try:
                await original(update)
            finally:
                self.handled += 1
                async with self._changed:
                    self._changed.notify_all()

        self.service.channel.process = counted  # type: ignore[method-assign]
        self.task: asyncio.Task | None = None

    async def start(self) -> ZaloWorld:
        await self.service.start()
        # The chart server listens on a port picked at start: that is the "public" URL in this test.
        self.service.media.base_url = f"{self.service.web.url}/media"
        self.task = asyncio.create_task(self.service.run(self.stop))
        return self

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)
        await self.service.close()

    async def deliver(self, update: dict) -> list[str]:
        """Push an update as the platform would; the texts sent back to that chat because of it."""
        chat = update["message"]["chat"]["id"]
        before = len(self.fake.texts(chat))
        target = self.handled + 1
        self.fake.push(update)
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.handled >= target), 10)
        return self.fake.texts(chat)[before:]

    async def say(self, user: str, text: str, **kw) -> str:
        return "\n".join(await self.deliver(self.fake.text_update(text, user_id=user, **kw)))

    async def pick(self, user: str, label: str) -> str:
        """Answer the last numbered list shown to ``user`` with the number of the option containing ``label``."""
        shown = self.fake.texts(user)[-1]
        numbers = [n for n, text in NUMBERED.findall(shown) if label.lower() in text.lower()]
        assert numbers, f"no option {label!r} in:\n{shown}"
        return await self.say(user, numbers[0])

    async def photo(self, user: str, data: bytes, **kw) -> str:
        url = self.fake.add_image(data)
        return "\n".join(await self.deliver(self.fake.image_update(url, user_id=user, **kw)))


@pytest.fixture
def db(sqlite_engine):
    """Most of these tests are about the channel, not the database: SQLite is enough (conftest's advice).
    Dedupe and reminders, where the database is the subject, run on both."""
    return sqlite_engine


@pytest.fixture
def w(sqlite_world):
    return sqlite_world


@pytest.fixture
def store(tmp_path: Path) -> PhotoStore:
    return PhotoStore(tmp_path / "photos")


@pytest.fixture
def mail() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def engine(db, w, programme, clock, store, mail) -> ConversationEngine:
    async def mailer(to: str, subject: str, body: str) -> None:
        mail.append((to, subject, body))

    return ConversationEngine(
        db=db, programme=programme, clock=clock, photos=store, media_dir=store.media_dir, mailer=mailer
    )


@pytest.fixture
async def zw(zalo_fake: FakeZaloApi, engine: ConversationEngine, tmp_path: Path):
    w = await ZaloWorld(zalo_fake, engine, tmp_path).start()
    yield w
    await w.close()


def identities(db) -> list[ChatIdentity]:
    with Session(db) as s:
        return list(s.exec(select(ChatIdentity).where(ChatIdentity.channel == "zalo")).all())


# --- linking ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that keeps what it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
            return "250 OK"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, handler
    controller.stop()


async def test_linking_by_emailed_code_over_smtp(
    zalo_fake, db, w, programme, clock, store, tmp_path, smtp_server
) -> None:
    controller, inbox = smtp_server
    mailer = SmtpMailer(f"smtp://127.0.0.1:{controller.port}?from=bot@fieldbot.example")
    engine = ConversationEngine(db=db, programme=programme, clock=clock, photos=store, mailer=mailer)
    zw = await ZaloWorld(zalo_fake, engine, tmp_path).start()
    try:
        reply = await zw.say("z-ha", "xin chào")
        assert "gõ số điện thoại" in reply.lower()
        reply = await zw.say("z-ha", "0901 000 003")  # Lý Thu Hà, who has an email in the roster
        assert "đã được gửi tới email h***@phuhoa1.example" in reply
        [email] = inbox.messages
        assert email["To"] == "ha@phuhoa1.example"
        code = re.search(r"\b(\d{6})\b", email.get_content()).group(1)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        assert "Bạn còn 4 lần thử" in await zw.say("z-ha", wrong)
        reply = await zw.say("z-ha", code)
        assert "Đã liên kết" in reply and "Lý Thu Hà" in reply
        assert re.search(r"^1\. .*\(/dangky\)$", reply, re.MULTILINE), reply  # the menu, numbered
        [ident] = identities(db)
        assert (ident.staff_id, ident.external_id, ident.chat_id) == (w.teacher_a2, "z-ha", "z-ha")
        # The numbered menu answers by number: 1 starts /dangky.
        assert "Họ và tên" in await zw.pick("z-ha", "/dangky")
    finally:
        await zw.close()


async def test_linking_by_a_principals_code(zw, db, w, clock) -> None:
    reply = await zw.say("z-minh", "0901000002")  # Trần Văn Minh: no email in the roster
    assert "xin mã liên kết" in reply and "hiệu trưởng" in reply
    with session_scope(db) as s:
        code = issue_link_code(s, staff_id=w.teacher_a, created_by=w.principal_a, now=clock.now())
    reply = await zw.say("z-minh", code[:3] + " " + code[3:])  # typed with a space, as people do
    assert "Đã liên kết" in reply and "Trần Văn Minh" in reply
    assert [i.staff_id for i in identities(db)] == [w.teacher_a]
    clock.advance(timedelta(minutes=1))
    # Single use: the same code on another account does nothing.
    await zw.say("z-other", "0901000002")
    assert "không đúng" in await zw.say("z-other", code)


# --- forms --------------------------------------------------------------------------------------------------


async def test_dangky_over_zalo_with_numbered_options_and_the_principal_told(
    zw, engine, db, w, programme, clock
) -> None:
    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=w.phones["teacher_a"])
    engine.link_directly(channel="zalo", external_id="z-lan", chat_id="z-lan", phone=w.phones["principal_a"])
    assert "Họ và tên" in await zw.say("z-minh", "/dangky")
    await zw.say("z-minh", "Lê Thị Hoa")
    await zw.say("z-minh", "01/02/2012")
    await zw.say("z-minh", "4A")
    reply = await zw.say("z-minh", "0123456789")
    assert "1. Nam" in reply and "2. Nữ" in reply
    await zw.pick("z-minh", "Nữ")
    await zw.pick("z-minh", "Hộ nghèo")
    await zw.pick("z-minh", "Máy tính")
    for _ in range(3):
        await zw.pick("z-minh", "Bỏ qua")
    summary = zw.fake.texts("z-minh")[-1]
    assert "Kiểm tra lại" in summary and "Lê Thị Hoa" in summary and "<b>" not in summary
    reply = await zw.pick("z-minh", "Lưu")
    assert "Đã lưu đăng ký của em Lê Thị Hoa" in reply
    with Session(db) as s:
        [st] = s.exec(select(Student)).all()
    assert (st.full_name, st.code, st.gender, st.category, st.school_id) == (
        "Lê Thị Hoa",
        "0123456789",
        "female",
        "poor",
        w.school_a,
    )
    # The principal, linked on Zalo, gets the notification in their own chat, through the outbox.
    sender = ZaloSender(api=ZaloApi(token=TOKEN, api_url=zw.fake.api_url))
    try:
        await Deliverer(db=db, programme=programme, clock=clock, senders={"zalo": sender}).deliver_due()
    finally:
        await sender.aclose()
    [note] = zw.fake.texts("z-lan")
    assert "Lê Thị Hoa" in note and "/duyet" in note


@pytest.fixture
def seeded(db, w, clock) -> None:
    now = clock.now()
    with session_scope(db) as s:
        s.add(
            Student(
                school_id=w.school_a,
                code="0100000001",
                full_name="Nguyễn Văn An",
                birth_date=date(2011, 1, 2),
                gender="male",
                class_name="5A1",
                category="poor",
                need="device",
                status=ReviewStatus.APPROVED,
                registered_by=w.teacher_a,
                created_at=now,
                updated_at=now,
            )
        )
        receipts.record_batch(
            s,
            school_id=w.school_a,
            by=w.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=date(2021, 11, 15),
            quantity=20,
            device_type=DeviceType.LAPTOP,
            brand_model="HP ProBook 440",
            condition="Mới",
            serials=[],
            now=now,
        )


async def test_bangiao_with_photo_urls_end_to_end(zw, engine, db, w, seeded, store) -> None:
    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=w.phones["teacher_a"])
    await zw.say("z-minh", "/bangiao")
    reply = await zw.say("z-minh", "an")
    assert "1. Nguyễn Văn An" in reply
    await zw.pick("z-minh", "Nguyễn Văn An")
    await zw.pick("z-minh", "HP ProBook")
    assert "Gửi ảnh chụp buổi bàn giao" in await zw.pick("z-minh", "Hôm nay")
    reply = await zw.photo("z-minh", phone_jpeg(1, taken=datetime(2021, 11, 17, 7, 45)), caption="buổi bàn giao")
    assert "Đã nhận 1 ảnh" in reply
    assert zw.fake.method_calls("sendChatAction"), "typing is shown while a photo is fetched"
    assert "biên bản" in await zw.pick("z-minh", "Xong")
    reply = await zw.photo("z-minh", phone_jpeg(3))
    assert "Nguyễn Văn An" in reply and "HP ProBook 440" in reply and "17/11/2021" in reply
    reply = await zw.pick("z-minh", "Lưu")
    assert "Đã ghi nhận bàn giao #1" in reply
    with Session(db) as s:
        [handover] = s.exec(select(Handover)).all()
        photos = s.exec(select(HandoverPhoto)).all()
    assert handover.handed_over_on == date(2021, 11, 17) and handover.recorded_by == w.teacher_a
    assert len(photos) == 2
    assert zw.fake.file_downloads == 2


async def test_redelivered_message_is_processed_once(zalo_fake, db_engine, world, programme, clock, tmp_path) -> None:
    engine = ConversationEngine(db=db_engine, programme=programme, clock=clock)
    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=world.phones["teacher_a"])
    zw = await ZaloWorld(zalo_fake, engine, tmp_path).start()
    try:
        update = zw.fake.text_update("/dangky", user_id="z-minh", message_id="dup-1")
        first = await zw.deliver(update)
        again = await zw.deliver(update)  # the platform sends the same message id again
        assert "Họ và tên" in first[-1] and again == []
        assert "Ngày sinh" in await zw.say("z-minh", "Lê Thị Hoa")  # the form advanced once, not twice
    finally:
        await zw.close()


async def test_unsupported_message_gets_a_friendly_answer(zw, engine, w) -> None:
    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=w.phones["teacher_a"])
    [reply] = await zw.deliver(zw.fake.sticker_update(user_id="z-minh"))
    assert "chưa đọc được loại tin nhắn này" in reply
    [reply] = await zw.deliver(zw.fake.unsupported_update(user_id="z-minh"))
    assert "Zalo không chuyển nội dung" in reply and "vui lòng gõ chữ hoặc gửi ảnh" in reply
    [reply] = await zw.deliver(zw.fake.voice_update(user_id="z-minh"))
    assert "chưa nghe được tin nhắn thoại" in reply


async def test_voice_mid_form_is_answered_and_the_question_asked_again(zw, engine, w) -> None:
    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=w.phones["teacher_a"])
    assert "Họ và tên" in await zw.say("z-minh", "/dangky")
    replies = await zw.deliver(zw.fake.voice_update(user_id="z-minh"))
    assert "chưa nghe được tin nhắn thoại" in replies[0] and "chưa đọc được" not in "\n".join(replies)
    assert "Họ và tên" in replies[-1]  # the engine's re-ask is kept
    assert "Ngày sinh" in await zw.say("z-minh", "Lê Thị Hoa")


async def test_updates_without_event_name_or_sender_name_are_read(zw, engine, w) -> None:
    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=w.phones["teacher_a"])
    bare = zw.fake.bare(zw.fake.text_update("/dangky", user_id="z-minh"), from_={"id": "z-minh"})
    assert "Họ và tên" in "\n".join(await zw.deliver(bare))


async def test_form_belongs_to_the_channel_it_was_started_on(zw, engine, w) -> None:
    from tests.engine_helpers import Chat

    engine.link_directly(channel="zalo", external_id="z-minh", chat_id="z-minh", phone=w.phones["teacher_a"])
    telegram = await Chat.linked(engine, w.phones["teacher_a"])
    await zw.say("z-minh", "/dangky")
    await telegram.say("Lê Thị Hoa")
    assert "trên Zalo" in telegram.text
    assert "Ngày sinh" in await zw.say("z-minh", "Lê Thị Hoa")


# --- reminders ------------------------------------------------------------------------------------------------


async def test_reminder_reaches_a_principal_linked_only_on_zalo(zalo_fake, db_engine, world, programme) -> None:
    for name in ("Trần Thị Bích", "Lê Văn Cường"):
        add_handover(
            db_engine,
            programme,
            school_id=world.school_a,
            recorded_by=world.teacher_a,
            handed_over_on=date(2021, 11, 17),
            created_at=local(2021, 11, 17, 9),
            name=name,
        )
    submit_report(db_engine, school_id=world.school_a, at=local(2021, 11, 16))
    chat = link(db_engine, staff_id=world.principal_a, channel="zalo", chat_id="z-lan", linked_at=local(2021, 11, 1))
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(db_engine, programme=programme, now=clock.now())

    async def no_sleep(_: float) -> None:
        return None

    sender = ZaloSender(api=ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep, max_retries=1))
    deliverer = Deliverer(db=db_engine, programme=programme, clock=clock, senders={"zalo": sender})
    try:
        zalo_fake.fail_next("sendMessage", status=500, count=2)  # the platform is down for this round
        await deliverer.deliver_due()
        [row] = [r for r in rows(db_engine, rule="csdl") if r.recipient_id == world.principal_a][:1]
        assert row.status == NotificationStatus.PENDING and "500" in row.last_error
        assert zalo_fake.texts(chat) == []
        clock.set(row.next_attempt_at)
        await deliverer.deliver_due()
    finally:
        await sender.aclose()
    [text] = [t for t in zalo_fake.texts(chat) if "CSDL" in t]
    assert "Trần Thị Bích" in text and "Lê Văn Cường" in text and "<b>" not in text
    [row] = [r for r in rows(db_engine, rule="csdl") if r.recipient_id == world.principal_a][:1]
    assert (row.status, row.channels_done) == (NotificationStatus.SENT, "zalo")


# --- fieldbot run ---------------------------------------------------------------------------------------------


async def test_fieldbot_run_serves_zalo_and_stops_on_signal(zalo_fake, tmp_path) -> None:
    from bot.app import build_app
    from bot.run import serve

    settings = Settings(
        _env_file=None,
        zalo_token=SecretStr(TOKEN),
        zalo_api_url=zalo_fake.api_url,
        database_url=f"sqlite:///{tmp_path / 'run.db'}",
        media_dir=tmp_path / "media",
    )
    app = build_app(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, scheduler=False, stop=stop))
    try:
        zalo_fake.push(zalo_fake.text_update("xin chào", user_id="z-new"))
        await zalo_fake.wait_sent(1)
        assert "gõ số điện thoại" in zalo_fake.texts("z-new")[0].lower()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    app.db.dispose()
