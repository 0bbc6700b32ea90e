"""No read path crosses schools: every command, every option one and two taps deep, every export.

School A of Thủ Dầu Một is filled with records carrying a marker; then people of school B, of the other
district, and an unlinked stranger crawl every command they have (and forged buttons taken from school A's
own screens). No reply, notification or exported file may contain the marker, and nothing of A changes.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlmodel import Session

from conversations.menu import COMMANDS
from core.messages import Outgoing, plain_text
from core.vocabulary import DeviceType, ReviewStatus, Source
from storage import handovers, receipts
from storage.db import session_scope
from storage.models import Batch, Handover, Student
from storage.photos import PhotoStore
from tests.engine_helpers import Chat, make_engine
from tests.photo_factory import phone_jpeg

MARK = "Bímật"  # in every school-A name: must never reach anyone outside school A


@pytest.fixture
def store(tmp_path) -> PhotoStore:
    return PhotoStore(tmp_path / "media")


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock, store):
    # The crawl sends a few hundred messages within one (fixed) minute: the flood gate must not cut it short,
    # or screens after the first commands are never looked at.
    return make_engine(
        sqlite_engine, programme, clock, photos=store, media_dir=store.media_dir, flood_limit_per_minute=100_000
    )


@pytest.fixture
def school_a(sqlite_engine, sqlite_world, programme, clock, store):
    now = clock.now()
    with session_scope(sqlite_engine) as s:
        ids = []
        for i, status in enumerate([ReviewStatus.PENDING, ReviewStatus.APPROVED, ReviewStatus.APPROVED]):
            st = Student(
                school_id=sqlite_world.school_a,
                code=f"55500000{i:02d}",
                full_name=f"Học Sinh {MARK} {i}",
                birth_date=date(2012, 3, 4),
                gender="female",
                class_name="4A1",
                category="poor",
                need="device",
                status=status,
                registered_by=sqlite_world.teacher_a,
                created_at=now,
                updated_at=now,
            )
            s.add(st)
            s.flush()
            ids.append(st.id)
        batch = receipts.record_batch(
            s,
            school_id=sqlite_world.school_a,
            by=sqlite_world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=date(2021, 11, 15),
            quantity=4,
            device_type=DeviceType.LAPTOP,
            brand_model=f"Dell {MARK}",
            condition="mới",
            serials=[],
            now=now,
        )
        photo = store.ingest(phone_jpeg(5))
        handovers.record_handover(
            s,
            student_id=ids[1],
            batch_id=batch.id,
            serial=None,
            handed_over_on=date(2021, 11, 16),
            by=sqlite_world.teacher_a,
            photos=[(photo, "scene")],
            programme=programme,
            now=now,
        )
    return ids


def _texts(replies: list[Outgoing]) -> str:
    return "\n".join(plain_text(o.text) + " " + " ".join(opt.label for opt in o.options) for o in replies)


def _files(replies: list[Outgoing]) -> list[bytes]:
    out = []
    for o in replies:
        if o.document is not None:
            out.append(o.document.read_bytes())
        if isinstance(o.photo, bytes):
            out.append(o.photo)
    return out


def _xlsx_text(data: bytes) -> str:
    if data[:2] != b"PK":
        return ""
    if data[:4] == b"PK\x03\x04" and b"xl/" not in data[:2000]:
        with zipfile.ZipFile(io.BytesIO(data)) as z:  # a zip of workbook + photos
            return " ".join(z.namelist()) + " ".join(_xlsx_text(z.read(n)) for n in z.namelist() if n.endswith(".xlsx"))
    wb = load_workbook(io.BytesIO(data), read_only=True)
    return " ".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v)


async def crawl(chat: Chat, commands: list[str]) -> tuple[str, list[bytes]]:
    """Every command, then each option of its first reply, then each option of that: all text seen."""
    seen: list[str] = []
    files: list[bytes] = []

    async def visit(path: list[str]) -> list:
        await chat.say("/huy")
        replies = await chat.say(path[0])
        for key in path[1:]:
            replies = await chat.tap_key(key)
        seen.append(_texts(replies))
        files.extend(_files(replies))
        return [o.key for o in chat.options]

    for cmd in commands:
        for key in (await visit([cmd]))[:8]:
            for key2 in (await visit([cmd, key]))[:6]:
                await visit([cmd, key, key2])
    return "\n".join(seen), files


def _a_state(sqlite_engine) -> list:
    with Session(sqlite_engine) as s:
        students = [(x.id, x.status, x.full_name, x.class_name) for x in s.scalars(select(Student))]
        handovers = [(h.id, h.status, h.csdl_updated_at) for h in s.scalars(select(Handover))]
        batches = [(b.id, b.handed_over) for b in s.scalars(select(Batch))]
    return [students, handovers, batches]


@pytest.mark.parametrize("who", ["principal_b", "teacher_b", "other_officer", "principal_other"])
async def test_nobody_outside_school_a_sees_or_changes_it(eng, sqlite_world, sqlite_engine, school_a, who) -> None:
    before = _a_state(sqlite_engine)
    chat = await Chat.linked(eng, sqlite_world.phones[who])
    text, files = await crawl(chat, [f"/{cmd}" for cmd, _ in COMMANDS])
    assert "/tonghop" and text  # the crawl really saw screens
    assert MARK not in text
    for data in files:
        assert MARK.encode() not in data
        assert MARK not in _xlsx_text(data)
    assert _a_state(sqlite_engine) == before


async def test_school_a_sees_its_own_marker(eng, sqlite_world, school_a) -> None:
    """The crawl is able to find the marker: the test above would fail if scope were not enforced."""
    chat = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    text, files = await crawl(chat, ["/duyet", "/tonghop", "/xuatfile"])
    assert MARK in text or any(MARK in _xlsx_text(f) for f in files)


async def test_forged_buttons_from_school_a_do_nothing_for_school_b(eng, sqlite_world, sqlite_engine, school_a) -> None:
    principal_a = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    keys: list[str] = []
    for path in (["/duyet"], ["/cuatoi"], ["/bangiao"]):
        await principal_a.say("/huy")
        await principal_a.say(path[0])
        keys += [o.key for o in principal_a.options]
        for k in list(principal_a.options)[:3]:
            await principal_a.tap_key(k.key)
            keys += [o.key for o in principal_a.options]
            await principal_a.say("/huy")
            await principal_a.say(path[0])
    await principal_a.say("/huy")
    before = _a_state(sqlite_engine)
    principal_b = await Chat.linked(eng, sqlite_world.phones["principal_b"])
    for cmd in ("/duyet", "/cuatoi", "/bangiao"):
        await principal_b.say(cmd)
        for key in keys:
            replies = await principal_b.tap_key(key)
            assert MARK not in _texts(replies)
        await principal_b.say("/huy")
    assert _a_state(sqlite_engine) == before


async def test_unlinked_and_deactivated_people_get_nothing(eng, sqlite_world, school_a) -> None:
    stranger = Chat(eng, "999999")
    text, files = await crawl(stranger, [f"/{cmd}" for cmd, _ in COMMANDS])
    assert MARK not in text and files == []
    gone = await Chat.linked(eng, sqlite_world.phones["teacher_a"], user_id="tg-gone")
    from storage.models import Staff

    with session_scope(eng.db) as s:
        s.get(Staff, sqlite_world.teacher_a).active = False
    eng_text, _ = await crawl(gone, ["/cuatoi", "/bangiao", "/tonghop"])
    assert MARK not in eng_text
