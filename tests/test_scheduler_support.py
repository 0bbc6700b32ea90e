"""Helpers for the scheduler tests: seed rows the rules look at, and senders/mailers that record.

(Named test_scheduler_* so it sits with its tests; it holds no tests itself.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.clock import LOCAL_TZ, UTC
from core.messages import Outgoing
from core.ports import RetryLater
from core.programme import Programme
from storage.db import session_scope
from storage.models import Batch, ChatIdentity, Handover, Notification, School, Student

_codes = itertools.count(100_000_000_000)


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=LOCAL_TZ).astimezone(UTC)


def add_student(
    engine: Engine,
    *,
    school_id: int,
    registered_by: int,
    created_at: datetime,
    status: str = "approved",
    name: str = "Nguyễn Văn An",
    class_name: str = "6A1",
) -> int:
    with session_scope(engine) as s:
        st = Student(
            school_id=school_id,
            code=str(next(_codes)),
            full_name=name,
            birth_date=date(2012, 3, 4),
            gender="male",
            class_name=class_name,
            category="poor",
            need="device",
            status=status,
            registered_by=registered_by,
            created_at=created_at,
            updated_at=created_at,
        )
        s.add(st)
        s.flush()
        return st.id


def add_batch(
    engine: Engine,
    *,
    school_id: int,
    recorded_by: int,
    received_on: date,
    quantity: int = 5,
    handed_over: int = 0,
    created_at: datetime,
) -> int:
    with session_scope(engine) as s:
        b = Batch(
            school_id=school_id,
            source="programme",
            received_on=received_on,
            quantity=quantity,
            device_type="laptop",
            brand_model="Dell Latitude 3420",
            condition="mới",
            handed_over=handed_over,
            recorded_by=recorded_by,
            created_at=created_at,
        )
        s.add(b)
        s.flush()
        return b.id


def add_handover(
    engine: Engine,
    programme: Programme,
    *,
    school_id: int,
    recorded_by: int,
    handed_over_on: date,
    created_at: datetime,
    name: str = "Trần Thị Bích",
    batch_id: int | None = None,
) -> int:
    student = add_student(engine, school_id=school_id, registered_by=recorded_by, created_at=created_at, name=name)
    if batch_id is None:
        batch_id = add_batch(
            engine,
            school_id=school_id,
            recorded_by=recorded_by,
            received_on=handed_over_on,
            quantity=1,
            handed_over=1,
            created_at=created_at,
        )
    with session_scope(engine) as s:
        h = Handover(
            student_id=student,
            batch_id=batch_id,
            school_id=school_id,
            handed_over_on=handed_over_on,
            recorded_by=recorded_by,
            csdl_due_at=programme.handover_update_due(handed_over_on),
            created_at=created_at,
            updated_at=created_at,
        )
        s.add(h)
        s.flush()
        return h.id


def link(
    engine: Engine, *, staff_id: int, channel: str = "telegram", chat_id: str | None = None, linked_at: datetime
) -> str:
    chat_id = chat_id or f"{channel[:2]}{staff_id}"
    with session_scope(engine) as s:
        s.add(
            ChatIdentity(staff_id=staff_id, channel=channel, external_id=chat_id, chat_id=chat_id, linked_at=linked_at)
        )
    return chat_id


def submit_report(engine: Engine, *, school_id: int, at: datetime) -> None:
    with session_scope(engine) as s:
        s.get(School, school_id).needs_report_submitted_at = at


def rows(engine: Engine, **where) -> list[Notification]:
    with session_scope(engine) as s:
        q = select(Notification).order_by(Notification.id)
        for k, v in where.items():
            q = q.where(getattr(Notification, k) == v)
        return list(s.execute(q).scalars())


@dataclass
class RecordingSender:
    """A ChannelSender that records what it sent; ``fail[chat_id]`` makes a chat raise instead,
    ``fail_photos`` makes every picture raise. Pictures are kept apart, in ``photos``."""

    channel: str = "telegram"
    sent: list[tuple[str, str]] = field(default_factory=list)
    photos: list[tuple[str, bytes]] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)
    fail_photos: Exception | None = None
    attempts: list[str] = field(default_factory=list)

    async def send(self, chat_id: str, message: Outgoing) -> None:
        self.attempts.append(chat_id)
        exc = self.fail.get(chat_id) or (self.fail_photos if message.photo is not None else None)
        if exc is not None:
            raise exc
        if message.photo is not None:
            self.photos.append((chat_id, message.photo))
        if message.text:
            self.sent.append((chat_id, message.text))

    def texts(self, chat_id: str) -> list[str]:
        return [t for c, t in self.sent if c == chat_id]


@dataclass
class RecordingMailer:
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    down: bool = False

    async def send(self, to: str, subject: str, body: str) -> None:
        if self.down:
            raise RetryLater("SMTP 127.0.0.1:2525 unreachable: ConnectionRefusedError")
        self.sent.append((to, subject, body))

    async def __call__(self, to: str, subject: str, body: str) -> None:
        await self.send(to, subject, body)
