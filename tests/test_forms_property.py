"""Random input through every command of the registry, as every role that may use it and one that may not.

Each example starts from the same seeded district (registered, approved, rejected and withdrawing pupils,
batches with and without serials, a sponsor, handovers waiting for the sector-database confirmation, in
school A and school B), copied into a fresh SQLite file and media folder. One person (school A's teacher or
principal, or the district officer) sends the command, answers a few of its questions plausibly, then a
random mix of typed text, taps of offered options, forged and stale callback keys, real and junk photos, other
commands, stickers, redelivered updates and messages on Zalo; meanwhile hours may pass and the other people of
school A may act (approve the pupil being corrected, take the last computer...). A "plausible answer" reads
the current question from the person's progress row and answers it (mostly validly), so random runs reach
the summaries and the saves, not only the first question; both languages are used.

For every reply (and every notification to someone else): no apology (the engine's internal-error text),
a text within Telegram's 4096 characters, option keys within Telegram's 64 bytes of callback data, no blank
button, and each message the Zalo renderer makes of it within Zalo's 2000 characters. After every message the
sender's form in progress (if any) is one their role may fill in; a redelivered update is not handled again;
/huy leaves no form. After the run, whatever was stored is valid and consistent, and no row of school B
changed.

Commands come from ``registry().commands``: a new form is covered without touching this file (a test below
asks for plausible answers to its typed fields in ``TYPED``, so random runs get past them).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlmodel import Session

from bot.settings import DEFAULT_PROGRAMME
from bot.zalo.render import TEXT_LIMIT as ZALO_LIMIT
from bot.zalo.render import ZaloPhoto, ZaloRenderer, ZaloText, zalo_len
from conversations.engine import APOLOGY, NOT_FOR_ROLE
from conversations.forms import registry
from conversations.forms.base import Kind
from conversations.runner import EDIT, FILL, PICK, SUMMARY
from core.clock import LOCAL_TZ, FixedClock
from core.i18n import LANGUAGES
from core.messages import Outgoing, plain_text
from core.programme import Programme, load_programme
from core.vocabulary import (
    DeviceType,
    FlagKind,
    HandoverStatus,
    PhotoKind,
    ReviewStatus,
    Role,
    Source,
    SponsorKind,
    role_label,
)
from storage import handovers, people, receipts, students
from storage.db import create_all, make_engine, session_scope
from storage.models import (
    AuditEvent,
    Batch,
    Conversation,
    Device,
    Flag,
    Handover,
    HandoverPhoto,
    LinkCode,
    Photo,
    School,
    Sponsor,
    Staff,
    Student,
)
from storage.photos import PhotoStore
from tests.engine_helpers import Chat
from tests.engine_helpers import make_engine as make_conversation_engine
from tests.factories import World, seed_world
from tests.photo_factory import encode, huge_bilevel_png, minimal_pdf, phone_jpeg, scene

NOW = datetime(2021, 11, 17, 8, 0, tzinfo=LOCAL_TZ)
TELEGRAM_TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64  # bytes of UTF-8

# Who plays each role: school-A staff and the Thủ Dầu Một officer (school B is the "someone else's" school).
PLAYERS = {Role.TEACHER: "teacher_a", Role.PRINCIPAL: "principal_a", Role.DISTRICT_OFFICER: "officer"}
SCHOOL_A = ("teacher_a", "principal_a")  # who may act meanwhile, besides the player
GLOBAL_COMMANDS = ("huy", "menu", "trogiup", "start")
COMMANDS = tuple(sorted(registry().commands))
ALLOWED = [(cmd, role) for cmd in COMMANDS for role in PLAYERS if role in registry().commands[cmd].roles]
REFUSED = [(cmd, role) for cmd in COMMANDS for role in PLAYERS if role not in registry().commands[cmd].roles]

# --- what people type ------------------------------------------------------------------------------------------

# Plausible answers for typed fields, by field name: valid ones first, then after None some that are refused.
TYPED: dict[str, list[str | None]] = {
    "full_name": ["Nguyễn Văn Tuấn", "lê thị hồng nhung", "Nguyễn Văn An", None, "An", "Trần 3"],
    "birth_date": ["05/09/2012", "1/1/2013", "04/03/2012", None, "31/02/2012", "05/09/2030", "05/09/1990"],
    "class_name": ["4A", "5/2", "lớp 3b", None, "9A", "zz"],
    "code": ["0123456789", "012345678901", "0123456780", None, "0100000001", "01000000x1", "123"],
    "hardship_reason": ["Bố mẹ mất việc do dịch", None, "x"],
    "guardian_name": ["Nguyễn Văn Bố", "bỏ qua", None, "B0"],
    "guardian_phone": ["0912345678", "bỏ qua", None, "12"],
    "note": ["bỏ qua", "Nhà xa trường", None, "n" * 1001],
    "reason": ["Trùng hồ sơ", "Chuyển trường", None, "x"],
    "student_query": ["An", "anh", "Nguyễn", "0100000", "khang", None, "Đỗ Văn An", "zzz"],
    "serial_typed": ["HP-02", "hp-03", " HP-14 ", None, "XX-9", "DL-2", "HP-99", "HP-01, HP-02"],
    "handed_over_on": ["hôm nay", "16/11/2021", "15/11/2021", None, "01/01/2021", "18/11/2021"],
    "received_on": ["15/11/2021", "hôm nay", None, "20/11/2021"],
    "quantity": ["2", "3", "1", None, "0", "10001", "hai"],
    "brand_model": ["Dell Latitude 3420", "HP ProBook 440"],
    "condition_other": ["Cũ, pin yếu"],
    "serials": ["bỏ qua", "SN-100\nSN-101", "AB-1,AB-2,AB-3", None, "DL-1, DL-2", "SN-200, SN-200", "x y"],
    "sponsor_name": ["Công ty CP ABC", "Quỹ Khuyến học", "công ty cp sóng xanh", None, "a"],
    "contact_name": ["Nguyễn Văn Liên", None, "a"],
    "contact_phone": ["0913860438", "bỏ qua", None, "0000"],
    "phone": ["0901000003", "+84 901 000 003", None, "0902000002", "0903000001", "0901000009", "0999999999", "abc"],
}


def typed_answer(field: str, i: int) -> str:
    """Mostly a valid answer; one time in four, one the form must refuse (when there are such)."""
    answers = TYPED[field]
    cut = answers.index(None) if None in answers else len(answers)
    valid, wrong = answers[:cut], answers[cut + 1 :]
    pool = wrong if wrong and i % 4 == 3 else valid
    return pool[(i // 4) % len(pool)]  # type: ignore[return-value]


WORDS = [
    "quay lại",
    "bỏ qua",
    "xong",
    "có",
    "không",
    "hủy",
    "1",
    "2",
    "3",
    "9",
    "0",
    "-1",
    "Lưu",
    "hôm nay",
    "Nguyễn Văn An",
    "05/09/2012",
    "4A",
    "0123456789",
    "can ngheo",
    "🙂",
    "",
    " ",
    "<b>x</b>",
    "&amp;",
    "a" * 700,
    "x" * 5000,
    "\u0000",
    "Nguye\u0302\u0303n Va\u0306n An",
    "/",
    "/ dangky",
    "/dangky@bot",
    "/maketoken 0901000003",
    "/cuatoi extra words",
    "/DUYET",
]


def _jpeg(seed: int, **exif: object) -> bytes:
    return phone_jpeg(seed, (320, 240), **exif)


@cache
def _photos() -> dict[str, bytes]:
    return {
        "a_handover": _jpeg(101),  # the photo of school A's seeded handovers: sending it again is flagged
        "b_handover": _jpeg(202),  # school B's: a reuse across schools
        "new": _jpeg(303),
        "new2": _jpeg(304),
        "old_exif": _jpeg(305, taken=datetime(2020, 1, 1, 9, 0)),  # captured long before: a capture-time flag
        "png": encode(scene(306, (200, 150)), "PNG"),
    }


@cache
def _junk() -> list[tuple[bytes, str]]:
    return [
        (b"\xff\xd8\xff junk", "image/jpeg"),
        (b"", "image/jpeg"),
        (minimal_pdf(), "application/pdf"),
        (encode(scene(307, (20, 20)), "JPEG"), "image/jpeg"),  # too small to show anything
        (huge_bilevel_png(30_000, 30_000), "image/png"),  # a decompression bomb
        (_jpeg(308)[:2000], "image/jpeg"),  # truncated
    ]


PHOTO_NAMES = ("a_handover", "b_handover", "new", "new2", "old_exif", "png")

# --- actions ---------------------------------------------------------------------------------------------------

commands = st.sampled_from(COMMANDS + GLOBAL_COMMANDS)
forged_keys = st.one_of(
    st.text(max_size=80),
    commands.map(lambda c: "/" + c),  # a menu button, for a command the role may not have
    st.sampled_from(["", ".", "0", "abc.0", "ffffff.0", "/", "//", "/dangky extra", "all:1,2,3", "x" * 65]),
)
action = st.one_of(
    st.integers(0, 50).map(lambda i: ("good", i)),
    st.tuples(st.integers(1, 14), st.integers(0, 50)).map(lambda t: ("goods", t)),  # several in a row
    st.tuples(st.integers(1, 14), st.integers(0, 50)).map(lambda t: ("goods", t)),
    st.integers(0, 30).map(lambda i: ("tap", i)),
    st.integers(0, 30).map(lambda i: ("tap", i)),
    st.integers(0, 200).map(lambda i: ("old", i)),  # a button of an earlier message
    st.integers(-3, 300).map(lambda i: ("nonce", i)),  # the current question's nonce, any index
    forged_keys.map(lambda k: ("key", k)),
    st.sampled_from(WORDS).map(lambda w: ("say", w)),
    st.text(max_size=40).map(lambda w: ("say", w)),
    st.tuples(commands, st.sampled_from(["", "", " 0901000003", " abc", " 1"])).map(lambda c: ("cmd", c[0] + c[1])),
    st.sampled_from(PHOTO_NAMES).map(lambda n: ("photo", n)),
    st.integers(0, 5).map(lambda i: ("junk", i)),
    st.binary(max_size=64).map(lambda b: ("bytes", b)),
    st.just(("sticker", None)),
    st.just(("resend", None)),  # the platform delivers the last update again
    st.one_of(st.sampled_from(WORDS), commands.map(lambda c: "/" + c)).map(lambda w: ("zalo", w)),
    st.sampled_from([1, 20, 30, 100]).map(lambda h: ("wait", h)),  # hours pass: deadlines, "today"
    # Someone else of the school acts meanwhile (approves the pupil being edited, takes the last computer...).
    st.tuples(
        st.integers(0, 1),
        st.one_of(
            st.tuples(st.integers(1, 12), st.integers(0, 50)).map(lambda t: ("goods", t)),
            st.tuples(commands, st.just("")).map(lambda c: ("cmd", c[0])),
            st.integers(0, 30).map(lambda i: ("tap", i)),
        ),
    ).map(lambda t: ("other", t)),
)
actions = st.lists(action, min_size=1, max_size=15)
languages = st.sampled_from(sorted(LANGUAGES))  # the person's language: every English text is exercised too

# --- the seeded district ---------------------------------------------------------------------------------------


@dataclass
class Template:
    root: Path
    world: World
    programme: Programme
    school_b: dict[str, Any]  # every row of school B as seeded
    last_audit: int  # the last audit event of the seeding: later ones are what a run did


def _seed(db, world: World, store: PhotoStore, programme: Programme) -> None:
    """Pupils in every state, batches, a sponsor and handovers in school A; a smaller copy in school B."""
    now = NOW
    with session_scope(db) as s:
        staff = {
            key: s.get(Staff, getattr(world, key)) for key in ("teacher_a", "principal_a", "teacher_b", "principal_b")
        }

        def register(key: str, name: str, born: date, cls: str, code: str, minutes: int, **extra: Any) -> Student:
            extra.setdefault("category", "poor")
            return students.register_student(
                s,
                actor=staff[key],
                full_name=name,
                birth_date=born,
                class_name=cls,
                code=code,
                gender="male",
                need="device",
                now=now - timedelta(days=2, minutes=-minutes),
                **extra,
            )

        a = {}
        for i, (key, name, born, cls) in enumerate(
            [
                ("teacher_a", "Nguyễn Văn An", date(2012, 3, 4), "4A"),
                ("teacher_a", "Trần Thị Ánh", date(2011, 5, 6), "5A1"),
                ("teacher_a", "Lê Văn Bình", date(2013, 7, 8), "3/2"),
                ("teacher_a", "Phạm Thị Chi", date(2012, 9, 10), "4B"),
                ("teacher_a", "Hoàng Văn Dũng", date(2011, 11, 12), "5B"),
                ("teacher_a", "Đỗ Thị Em", date(2012, 1, 13), "4A"),
                ("teacher_a", "Vũ Văn Giang", date(2013, 2, 14), "3A"),
                ("principal_a", "Bùi Thị Hoa", date(2012, 4, 15), "4C"),
                ("principal_a", "Ngô Văn Khang", date(2011, 6, 16), "5C"),
            ]
        ):
            extra = {"category": "other_hardship", "hardship_reason": "Bố mất việc"} if i == 1 else {}
            a[name.split()[-1]] = register(
                key,
                name,
                born,
                cls,
                f"01000000{i:02d}",
                i,
                guardian_name="Nguyễn Văn Bố",
                guardian_phone="+84912345678",
                **extra,
            )
        principal = staff["principal_a"]
        for name in ("An", "Ánh", "Dũng", "Em", "Giang", "Khang"):
            students.approve(s, actor=principal, student_id=a[name].id, now=now - timedelta(days=1))
        students.reject(
            s, actor=principal, student_id=a["Chi"].id, reason="Thiếu giấy xác nhận", now=now - timedelta(days=1)
        )
        students.withdraw(
            s, actor=staff["teacher_a"], student_id=a["Dũng"].id, reason="Chuyển trường", now=now - timedelta(hours=20)
        )
        received = date(2021, 11, 15)
        serial_batch = receipts.record_batch(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=received,
            quantity=3,
            device_type=DeviceType.LAPTOP,
            brand_model="Dell Latitude 3420",
            condition="Mới",
            serials=["DL-1", "DL-2", "DL-3"],
            now=now,
        )
        plain_batch = receipts.record_batch(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=received,
            quantity=4,
            device_type=DeviceType.TABLET,
            brand_model="Samsung Tab A7",
            condition="Mới",
            serials=[],
            now=now,
        )
        receipts.record_batch(  # more serials than buttons: /bangiao asks for the serial to be typed
            s,
            school_id=world.school_a,
            by=world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=received,
            quantity=14,
            device_type=DeviceType.LAPTOP,
            brand_model="HP ProBook 440",
            condition="Mới",
            serials=[f"HP-{n:02d}" for n in range(1, 15)],
            now=now,
        )
        sponsor = receipts.record_sponsor(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            name="Công ty CP Sóng Xanh",
            kind=SponsorKind.BUSINESS,
            contact_name="Lý Văn Sóng",
            contact_phone="0913000111",
            now=now,
        )
        receipts.record_batch(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            source=Source.OTHER,
            sponsor_id=sponsor.id,
            received_on=date(2021, 11, 10),
            quantity=1,
            device_type=DeviceType.DESKTOP,
            brand_model="Lenovo M70",
            condition="Đã qua sử dụng - tốt",
            serials=[],
            now=now,
        )
        photo_a = store.ingest(_photos()["a_handover"])
        for name, batch, serial, day in (
            ("Em", plain_batch, None, date(2021, 11, 15)),
            ("Giang", serial_batch, "DL-1", date(2021, 11, 16)),
        ):
            handovers.record_handover(
                s,
                student_id=a[name].id,
                batch_id=batch.id,
                serial=serial,
                handed_over_on=day,
                by=world.teacher_a,
                photos=[(photo_a, PhotoKind.SCENE)],
                programme=programme,
                now=now - timedelta(hours=1),
            )

        b = {}
        for i, (name, born, cls) in enumerate(
            [
                ("Đỗ Văn An", date(2009, 3, 4), "7A"),
                ("Mai Thị Lan", date(2010, 5, 6), "6A"),
                ("Võ Văn Tâm", date(2008, 5, 6), "8A"),
            ]
        ):
            b[name] = students.register_student(
                s,
                actor=staff["teacher_b"],
                full_name=name,
                birth_date=born,
                class_name=cls,
                code=f"02000000{i:02d}",
                gender="male",
                category="near_poor",
                need="both",
                now=now - timedelta(days=3),
            )
        for name in ("Đỗ Văn An", "Võ Văn Tâm"):
            students.approve(s, actor=staff["principal_b"], student_id=b[name].id, now=now - timedelta(days=2))
        batch_b = receipts.record_batch(
            s,
            school_id=world.school_b,
            by=world.principal_b,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=received,
            quantity=2,
            device_type=DeviceType.LAPTOP,
            brand_model="Asus VivoBook",
            condition="Mới",
            serials=["AS-1", "AS-2"],
            now=now,
        )
        handovers.record_handover(
            s,
            student_id=b["Võ Văn Tâm"].id,
            batch_id=batch_b.id,
            serial="AS-1",
            handed_over_on=date(2021, 11, 16),
            by=world.teacher_b,
            photos=[(store.ingest(_photos()["b_handover"]), PhotoKind.SCENE)],
            programme=programme,
            now=now - timedelta(hours=1),
        )
        receipts.record_sponsor(
            s,
            school_id=world.school_b,
            by=world.principal_b,
            name="Quỹ Khuyến học",
            kind=SponsorKind.ORGANISATION,
            contact_name=None,
            contact_phone=None,
            now=now,
        )


@pytest.fixture(scope="module", autouse=True)
def _one_drawing_per_summary():
    """/tonghop draws its chart for real, once per distinct set of figures and language: the same summary
    makes the same picture, and redrawing it for every random /tonghop would take most of this file's time."""
    from reports import chart

    real, drawn = chart.render_chart, {}

    def render_chart(summary, *, lang: str = "vi") -> bytes:
        key = (repr(summary), lang)
        if key not in drawn:
            drawn[key] = real(summary, lang=lang)
        return drawn[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chart, "render_chart", render_chart)
        yield


class Databases:
    """One SQLAlchemy engine for every example, each example on its own copy of the template file. (A new
    engine per example would compile every SQL statement again: the compiled cache belongs to the engine,
    and compiling was a third of this file's time.)"""

    def __init__(self, placeholder: Path) -> None:
        self.path = placeholder
        self.engine = make_engine(f"sqlite:///{placeholder}")
        sa_event.listen(self.engine, "do_connect", self._connect)

    def _connect(self, _dialect, _record, cargs, _cparams) -> None:
        cargs[0] = str(self.path)

    def use(self, path: Path):
        self.engine.dispose()  # no connection to the previous example's file is reused
        self.path = path
        return self.engine


@pytest.fixture(scope="module")
def databases(template: Template) -> Iterator[Databases]:
    dbs = Databases(template.root / "fieldbot.db")
    yield dbs
    dbs.engine.dispose()


def _account(channel: str, phone: str) -> str:
    return f"{channel}-{phone.lstrip('+')}"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Template:
    root = tmp_path_factory.mktemp("forms-template")
    programme = load_programme(DEFAULT_PROGRAMME)
    db = make_engine(f"sqlite:///{root / 'fieldbot.db'}")
    try:
        create_all(db)
        world = seed_world(db, now=NOW)
        _seed(db, world, PhotoStore(root / "media"), programme)
        with session_scope(db) as s:  # everyone who may be told something has a chat on Telegram and Zalo
            for key in (*PLAYERS.values(), "teacher_a2", "principal_b"):
                for channel in ("telegram", "zalo"):
                    people.link_identity(
                        s,
                        staff_id=getattr(world, key),
                        channel=channel,
                        external_id=_account(channel, world.phones[key]),
                        chat_id=_account(channel, world.phones[key]),
                        now=NOW,
                    )
        school_b = school_rows(db, world.school_b)
        with Session(db) as s:
            last_audit = s.scalar(select(func.max(AuditEvent.id)))
        with db.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.dispose()
    return Template(root=root, world=world, programme=programme, school_b=school_b, last_audit=last_audit)


# --- properties of what is sent ----------------------------------------------------------------------------------

ZALO = {lang: ZaloRenderer(media=None, language=lang) for lang in LANGUAGES}
APOLOGIES = [APOLOGY(lang) for lang in LANGUAGES]


def check_reply(out: Outgoing) -> None:
    text = out.text or ""
    shown = plain_text(text)
    assert not any(a in text or a in shown for a in APOLOGIES), f"internal error:\n{text}"
    assert len(text) <= TELEGRAM_TEXT_LIMIT, f"{len(text)} characters for Telegram"
    for o in out.options:
        assert len(o.key.encode()) <= CALLBACK_DATA_LIMIT, f"callback data {o.key!r} over 64 bytes"
        assert o.label.strip(), f"blank button in {[x.label for x in out.options]}"
    for lang, renderer in ZALO.items():
        messages = renderer.render(out)
        if shown.strip() or out.options or out.photo is not None or out.document is not None:
            assert messages, f"Zalo renders nothing of {out!r}"
        for m in messages:
            assert isinstance(m, (ZaloText, ZaloPhoto))
            body = m.text if isinstance(m, ZaloText) else (m.caption or "")
            assert zalo_len(body) <= ZALO_LIMIT and len(body) <= ZALO_LIMIT, f"Zalo ({lang}) {zalo_len(body)}"


def progress_of(db, staff_id: int):
    with db.connect() as conn:
        return conn.execute(
            select(Conversation.form, Conversation.step, Conversation.channel, Conversation.data).where(
                Conversation.staff_id == staff_id
            )
        ).first()


def check_progress(db, person: Staff) -> None:
    """The person's form in progress, if any, exists, is one their role may fill in, and is at a real step."""
    conv = progress_of(db, person.id)
    if conv is None:
        return
    form = registry().forms.get(conv.form)
    assert form is not None, conv.form
    assert person.role in form.roles, f"{person.role} is filling in {conv.form}"
    mode = conv.data.get("m", FILL)
    assert mode in (FILL, SUMMARY, PICK, EDIT), mode
    if mode in (FILL, EDIT):
        assert form.field(conv.step) is not None, (conv.form, conv.step)
    for label, _value in conv.data.get("o", []):
        assert isinstance(label, str) and label.strip(), conv.data.get("o")


# --- driving one person ------------------------------------------------------------------------------------------


class Driver:
    """One person talking: on Telegram (``chat``) and, now and then, on Zalo (``zalo``); ``others`` are the
    other people of the school, who act now and then too."""

    def __init__(self, db, person: Staff, chat: Chat, zalo: Chat, clock: FixedClock) -> None:
        self.db, self.person, self.chat, self.zalo, self.clock = db, person, chat, zalo, clock
        self.others: list[Driver] = []
        self.seen_keys: list[str] = []  # every option ever offered, for taps on stale buttons

    async def checked(self, coro) -> list[Outgoing]:
        """Send, then check every reply and the person's progress."""
        replies = await coro
        for out in replies:
            check_reply(out)
            self.seen_keys.extend(o.key for o in out.options)
        check_progress(self.db, self.person)
        return replies

    def conversation(self):
        return progress_of(self.db, self.person.id)

    def _tap(self, i: int):
        opts = self.chat.options
        if not opts:
            return self.chat.say("/menu")
        return self.chat.tap_key(opts[i % len(opts)].key)

    def _plausible(self, i: int):
        """Answer the current question sensibly: the save button, a photo, a typed value, an option."""
        conv = self.conversation()
        if conv is None or conv.channel != self.chat.channel:
            return self._tap(i)
        form = registry().forms.get(conv.form)
        mode = conv.data.get("m", FILL)
        opts = self.chat.options
        if mode == SUMMARY and opts and i % 5:
            return self.chat.tap_key(opts[0].key)  # Lưu
        field = form.field(conv.step) if form is not None and mode in (FILL, EDIT) else None
        if field is not None and field.kind == Kind.PHOTO:
            finish = [o for o in opts if o.label.startswith(("✅", "Bỏ qua", "Skip"))]
            if finish and i % 3 == 0:
                return self.chat.tap_key(finish[0].key)
            return self.chat.photo(_photos()[PHOTO_NAMES[i % len(PHOTO_NAMES)]])
        if field is not None and field.name in TYPED and (not opts or i % 5):
            return self.chat.say(typed_answer(field.name, i))
        forward = [o for o in opts if not o.label.startswith("↩")]
        if forward and i % 7:
            return self.chat.tap_key(forward[i % len(forward)].key)
        return self._tap(i)

    async def do(self, kind: str, value: Any) -> None:
        chat = self.chat
        if kind == "goods":
            n, i = value
            for k in range(n):
                await self.checked(self._plausible(i + 13 * k))
            return
        if kind == "good":
            coro = self._plausible(value)
        elif kind == "tap":
            coro = self._tap(value)
        elif kind == "old":
            coro = chat.tap_key(self.seen_keys[value % len(self.seen_keys)]) if self.seen_keys else chat.say("1")
        elif kind == "nonce":
            keys = [o.key for o in chat.options]
            nonce = keys[0].partition(".")[0] if keys else "000000"
            coro = chat.tap_key(f"{nonce}.{value}")
        elif kind == "key":
            coro = chat.tap_key(value)
        elif kind in ("say", "cmd"):
            coro = chat.say(value if kind == "say" else "/" + value)
        elif kind == "photo":
            coro = chat.photo(_photos()[value], mime="image/png" if value == "png" else "image/jpeg")
        elif kind == "junk":
            data, mime = _junk()[value]
            coro = chat.photo(data, mime=mime)
        elif kind == "bytes":
            coro = chat.photo(value)
        elif kind == "sticker":
            coro = chat.send(unsupported=True)
        elif kind == "resend":
            if chat.last is None:
                return
            assert await self.checked(chat.resend()) == [], "a redelivered update was handled twice"
            return
        elif kind == "zalo":
            coro = self.zalo.say(value)
        elif kind == "wait":
            self.clock.advance(timedelta(hours=value))
            return
        elif kind == "other":
            if self.others:
                await self.others[value[0] % len(self.others)].do(*value[1])
            return
        else:
            raise AssertionError(kind)
        await self.checked(coro)
        if kind in ("say", "cmd", "zalo") and value.strip() in ("huy", "/huy"):
            assert self.conversation() is None, "/huy left a form in progress"


async def _drive(tpl: Template, db, workdir: Path, role: str, lang: str, body) -> Driver:
    """The player of ``role``, speaking ``lang``, in the copy of the seeded district in ``workdir`` (database
    ``db``), with the other people of school A at hand; ``body(driver)`` talks. Returns the driver, for the
    checks of what was stored."""
    store = PhotoStore(workdir / "media")
    clock = FixedClock(NOW)
    eng = make_conversation_engine(
        db, tpl.programme, clock, photos=store, media_dir=store.media_dir, flood_limit_per_minute=10**6
    )

    def driver(key: str) -> Driver:
        with session_scope(db) as s:
            person = s.get(Staff, getattr(tpl.world, key))
            if key == PLAYERS[role]:
                person.language = lang
        phone = tpl.world.phones[key]
        return Driver(
            db,
            person,
            Chat(eng, _account("telegram", phone)),
            Chat(eng, _account("zalo", phone), channel="zalo"),
            clock,
        )

    main = driver(PLAYERS[role])
    main.others = [driver(key) for key in SCHOOL_A if key != PLAYERS[role]]
    await body(main)
    return main


def _run(tmp_path_factory, tpl: Template, dbs: Databases, role: str, lang: str, body) -> None:
    workdir = tmp_path_factory.mktemp("ex")
    shutil.copyfile(tpl.root / "fieldbot.db", workdir / "fieldbot.db")
    shutil.copytree(tpl.root / "media", workdir / "media")
    db = dbs.use(workdir / "fieldbot.db")
    try:
        driver = asyncio.run(_drive(tpl, db, workdir, role, lang, body))
        with db.connect() as conn:  # the example's own copy, never the template
            assert Path(conn.exec_driver_sql("PRAGMA database_list").first()[2]) == workdir / "fieldbot.db"
        check_storage(
            db,
            tpl,
            workdir / "media",
            talkers={d.person.id for d in (driver, *driver.others)},
            today=driver.clock.now().astimezone(tpl.programme.tz).date(),
        )
        with Session(db) as s:  # what the run did, for --hypothesis-show-statistics
            for action, entity in s.execute(
                select(AuditEvent.action, AuditEvent.entity).where(AuditEvent.id > tpl.last_audit).distinct()
            ):
                if action != "link":
                    event(f"{action} {entity}")
    finally:
        db.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


# --- the tests -----------------------------------------------------------------------------------------------------

# Examples per (command, role): small enough for CI (the whole file runs in ~20 s); raise it to hunt for bugs,
# e.g. FIELDBOT_PROPERTY_EXAMPLES=300 .venv/bin/pytest -q tests/test_forms_property.py
EXAMPLES = int(os.environ.get("FIELDBOT_PROPERTY_EXAMPLES", "25"))
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.mark.parametrize(("command", "role"), ALLOWED, ids=[f"{c}-{r}" for c, r in ALLOWED])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=QUIET)
@given(
    args=st.sampled_from(["", "", "", " 0901000003", " xyz"]),
    lead=st.tuples(st.integers(0, 16), st.integers(0, 50)),
    steps=actions,
    lang=languages,
)
def test_random_input_through_a_form(
    tmp_path_factory, template, databases, command, role, args, lead, steps, lang
) -> None:
    """A person who may use the command starts it (with an argument now and then), answers a few of its
    questions plausibly (mostly valid answers, some refused ones), then anything goes."""

    async def body(driver: Driver) -> None:
        for kind, value in [("cmd", command + args), ("goods", lead), *steps]:
            await driver.do(kind, value)

    _run(tmp_path_factory, template, databases, role, lang, body)


@pytest.mark.parametrize(("command", "role"), REFUSED, ids=[f"{c}-{r}" for c, r in REFUSED])
@settings(max_examples=max(1, EXAMPLES // 3), deadline=None, suppress_health_check=QUIET)
@given(steps=st.lists(action, max_size=10), lang=languages)
def test_a_command_refused_for_a_role_stays_refused(
    tmp_path_factory, template, databases, command, role, steps, lang
) -> None:
    """Typed or as a forged menu button, a command the role may not use starts nothing, and random input
    afterwards breaks nothing."""
    refusal = NOT_FOR_ROLE(lang, cmd=command, role=role_label(role, lang))

    async def body(driver: Driver) -> None:
        chat = driver.chat
        for send in (
            lambda: chat.say(f"/{command}"),
            lambda: chat.say(f"/{command} 0901000003"),
            lambda: chat.tap_key(f"/{command}"),
        ):  # typed, with an argument, as a forged menu button
            await driver.checked(send())
            assert refusal in chat.text and driver.conversation() is None
        for kind, value in steps:
            await driver.do(kind, value)

    _run(tmp_path_factory, template, databases, role, lang, body)


def test_every_command_and_role_is_covered() -> None:
    """Every registered command is driven as each role that may use it; every role in the registry is played."""
    roles = {r for item in registry().commands.values() for r in item.roles}
    assert roles <= set(PLAYERS), f"add a player for {roles - set(PLAYERS)}"
    assert {c for c, _ in ALLOWED} == set(COMMANDS)
    for form in registry().forms.values():
        for f in form.fields:
            if f.kind in (Kind.TEXT, Kind.NUMBER, Kind.DATE, Kind.PHONE):
                assert f.name in TYPED, f"add plausible answers for {form.name}.{f.name} to TYPED"


# --- what may be stored ----------------------------------------------------------------------------------------

CODE = re.compile(r"^(\d{10}|\d{12})$")
CLASS = re.compile(r"^\d{1,2}(/\d{1,2}|[A-Z]{1,2}\d{0,2})$")
PHOTO_FLAGS = {FlagKind.PHOTO_REUSED, FlagKind.PHOTO_NEAR_DUPLICATE}


def _student_problems(s: Student, programme: Programme, staff: dict[int, Staff], today: date) -> list[str]:
    out = []
    cat = programme.category(s.category)
    if not CODE.match(s.code):
        out.append("code")
    if not (
        2 <= len(s.full_name.split()) <= 7
        and unicodedata.is_normalized("NFC", s.full_name)
        and s.full_name == " ".join(s.full_name.split())
    ):
        out.append("name")
    if not CLASS.match(s.class_name):
        out.append("class")
    if cat is None:
        out.append("category")
    elif bool(cat.reason_required) != bool(s.hardship_reason and s.hardship_reason.strip()):
        out.append("hardship_reason")
    if s.need not in {"device", "internet", "both"} or s.gender not in {"male", "female"}:
        out.append("need/gender")
    if s.birth_date > today:
        out.append("birth_date")
    if s.guardian_phone is not None and not re.fullmatch(r"\+\d{8,15}", s.guardian_phone):
        out.append("guardian_phone")
    if s.status not in set(ReviewStatus):
        out.append("status")
    if (s.status == ReviewStatus.REJECTED) != bool(s.reject_reason):
        out.append("reject_reason")
    registrant = staff.get(s.registered_by)
    if registrant is None or registrant.school_id != s.school_id or registrant.role == Role.DISTRICT_OFFICER:
        out.append("registered_by")
    if s.reviewed_by is not None:
        reviewer = staff.get(s.reviewed_by)
        if reviewer is None or reviewer.role != Role.PRINCIPAL or reviewer.school_id != s.school_id:
            out.append("reviewed_by")
    return out


def _rows(s: Session, model, *where) -> list[dict[str, Any]]:
    table = model.__table__
    return [dict(r._mapping) for r in s.execute(select(table).where(*where).order_by(table.c.id))]


def school_rows(db, school_id: int) -> dict[str, Any]:
    """Every row that belongs to one school (flags aside: another school's reuse of a photo adds one)."""
    with Session(db) as s:
        batch_ids = select(Batch.id).where(Batch.school_id == school_id)
        handover_ids = select(Handover.id).where(Handover.school_id == school_id)
        return {
            "school": _rows(s, School, School.id == school_id),
            "staff": _rows(s, Staff, Staff.school_id == school_id),
            "students": _rows(s, Student, Student.school_id == school_id),
            "batches": _rows(s, Batch, Batch.school_id == school_id),
            "devices": _rows(s, Device, Device.batch_id.in_(batch_ids)),
            "handovers": _rows(s, Handover, Handover.school_id == school_id),
            "handover_photos": _rows(s, HandoverPhoto, HandoverPhoto.handover_id.in_(handover_ids)),
            "sponsors": _rows(s, Sponsor, Sponsor.school_id == school_id),
            "flags": _rows(s, Flag, Flag.school_id == school_id),
        }


def check_storage(db, tpl: Template, media: Path, *, talkers: set[int], today: date) -> None:
    world, programme = tpl.world, tpl.programme
    with Session(db) as s:
        staff = {p.id: p for p in s.scalars(select(Staff))}
        schools = {x.id: x for x in s.scalars(select(School))}
        all_students = {x.id: x for x in s.scalars(select(Student))}
        for st_ in all_students.values():
            problems = _student_problems(st_, programme, staff, today)
            assert not problems, (problems, st_)
            if st_.late:
                assert schools[st_.school_id].needs_report_submitted_at is not None
        for school in schools.values():
            if school.needs_report_submitted_by is not None:
                p = staff[school.needs_report_submitted_by]
                assert p.role == Role.PRINCIPAL and p.school_id == school.id

        batches = {b.id: b for b in s.scalars(select(Batch))}
        devices = {d.id: d for d in s.scalars(select(Device))}
        handovers = list(s.scalars(select(Handover)))
        for b in batches.values():
            p = staff[b.recorded_by]
            assert p.role == Role.PRINCIPAL and p.school_id == b.school_id, b
            assert 1 <= b.quantity <= receipts.MAX_QUANTITY and b.received_on <= today, b
            assert b.brand_model.strip() and b.condition.strip(), b
            n_devices = sum(1 for d in devices.values() if d.batch_id == b.id)
            assert n_devices in (0, b.quantity), (b, n_devices)
            n_handovers = sum(1 for h in handovers if h.batch_id == b.id)
            assert b.handed_over == n_handovers <= b.quantity, (b, n_handovers)
            if b.sponsor_id is not None:
                sp = s.get(Sponsor, b.sponsor_id)
                assert sp is not None and sp.school_id in (None, b.school_id)
                assert b.source == Source.OTHER
        for d in devices.values():
            assert receipts.SERIAL_RE.match(d.serial), d

        active_students = [h.student_id for h in handovers if h.status == HandoverStatus.ACTIVE]
        assert len(active_students) == len(set(active_students)), "a pupil with two computers"
        used_devices = [h.device_id for h in handovers if h.device_id is not None]
        assert len(used_devices) == len(set(used_devices))
        for h in handovers:
            student, batch = all_students.get(h.student_id), batches.get(h.batch_id)
            assert student is not None and batch is not None, h
            assert h.school_id == student.school_id == batch.school_id, h
            assert staff[h.recorded_by].school_id == h.school_id, h
            assert student.status == ReviewStatus.APPROVED, (student, h)
            assert batch.received_on <= h.handed_over_on <= today, h
            if any(d.batch_id == batch.id for d in devices.values()):
                assert h.device_id is not None and devices[h.device_id].batch_id == batch.id, h
            else:
                assert h.device_id is None, h
            kinds = [hp.kind for hp in s.scalars(select(HandoverPhoto).where(HandoverPhoto.handover_id == h.id))]
            assert PhotoKind.SCENE in kinds, h
            if h.csdl_updated_at is not None:
                p = staff[h.csdl_confirmed_by]
                assert p.role == Role.PRINCIPAL and p.school_id == h.school_id, h
        photo_ids = set()
        for photo in s.scalars(select(Photo)):
            photo_ids.add(photo.id)
            for rel in (photo.path, photo.thumb_path):
                assert (media / rel).is_file(), f"photo #{photo.id}: {rel} missing"
        linked = set(s.scalars(select(HandoverPhoto.photo_id)))
        assert linked <= photo_ids
        handover_ids = {h.id: h for h in handovers}
        for f in s.scalars(select(Flag)):
            assert f.handover_id in handover_ids and handover_ids[f.handover_id].school_id == f.school_id, f
        for sp in s.scalars(select(Sponsor)):
            assert sp.name.strip() and (sp.contact_phone is None or sp.contact_phone.startswith("+")), sp
        for code in s.scalars(select(LinkCode)):
            maker, target = staff[code.created_by], staff[code.staff_id]
            assert target.active, code
            if maker.role == Role.DISTRICT_OFFICER:
                assert target.district_id == maker.district_id, code
            else:
                assert maker.role == Role.PRINCIPAL and target.school_id == maker.school_id, code
        in_progress = set(s.scalars(select(Conversation.staff_id)))
        assert in_progress <= talkers, "someone who sent nothing has a form in progress"

    before = tpl.school_b
    after = school_rows(db, world.school_b)
    for table in before:
        if table == "flags":
            old = {f["id"]: f for f in before["flags"]}
            for f in after["flags"]:
                if f["id"] in old:
                    assert f == old[f["id"]], f
                else:  # school A reused school B's photo: B's handover is flagged, which is the point
                    reuser = handover_ids[f["related_handover_id"]]
                    assert f["kind"] in PHOTO_FLAGS and reuser.school_id != world.school_b, f
        else:
            assert after[table] == before[table], f"school B's {table} changed"
