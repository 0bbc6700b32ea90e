"""Random input through the student forms: no apology (no bug), every reply renders within platform limits,
and whatever gets stored is valid."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session

from bot.settings import DEFAULT_PROGRAMME
from conversations.engine import APOLOGY
from core.clock import LOCAL_TZ, FixedClock
from core.programme import load_programme
from storage.db import create_all, make_engine
from storage.models import Student
from tests.engine_helpers import CONSENT_LABEL, Chat
from tests.engine_helpers import make_engine as make_conversation_engine
from tests.factories import seed_world

WORDS = [
    "/dangky",
    "/cuatoi",
    "/huy",
    "/menu",
    "/trogiup",
    "quay lại",
    "bỏ qua",
    "1",
    "2",
    "3",
    "9",
    "Nguyễn Văn An",
    "05/09/2012",
    "31/02/2012",
    "4A",
    "0123456789",
    "can ngheo",
    "khó khăn khác",
    "Có",
    "không",
    "🙂",
    "",
    "<b>x</b>",
    "a" * 700,
    "2012-13-01",
    "0912345678",
]

action = st.one_of(
    st.sampled_from(WORDS).map(lambda w: ("say", w)),
    st.text(max_size=40).map(lambda w: ("say", w)),
    st.integers(min_value=0, max_value=12).map(lambda i: ("tap", i)),
    st.text(max_size=12).map(lambda k: ("key", k)),
    st.just(("photo", b"\xff\xd8\xff junk")),
)

CODE = re.compile(r"^(\d{10}|\d{12})$")


def _valid(student: Student) -> bool:
    return (
        bool(CODE.match(student.code))
        and 2 <= len(student.full_name.split()) <= 7
        and unicodedata.is_normalized("NFC", student.full_name)
        and student.category in {"poor", "near_poor", "covid_orphan", "other_hardship"}
        and (student.category != "other_hardship" or bool(student.hardship_reason))
        and student.need in {"device", "internet", "both"}
        and student.gender in {"male", "female"}
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(action, min_size=1, max_size=30))
def test_random_input_never_breaks_a_form(tmp_path_factory, actions) -> None:
    path: Path = tmp_path_factory.mktemp("prop")
    db = make_engine(f"sqlite:///{path / 'p.db'}")
    create_all(db)
    clock = FixedClock(datetime(2021, 11, 17, 8, 0, tzinfo=LOCAL_TZ))
    world = seed_world(db, now=clock.now())
    eng = make_conversation_engine(db, load_programme(DEFAULT_PROGRAMME), clock, flood_limit_per_minute=10**6)

    async def run() -> None:
        chat = await Chat.linked(eng, world.phones["teacher_a"])
        await chat.say("/dangky")
        await chat.tap(CONSENT_LABEL)
        for kind, value in actions:
            if kind == "say":
                await chat.say(value)
            elif kind == "tap":
                opts = chat.options
                await (chat.tap_key(opts[value % len(opts)].key) if opts else chat.say("/dangky"))
            elif kind == "key":
                await chat.tap_key(value)
            else:
                await chat.photo(value)
            for out in chat.replies:
                assert APOLOGY("vi") not in out.text
                assert len(out.text) <= 4096
                assert all(len(o.key.encode()) <= 64 and o.label for o in out.options)

    try:
        asyncio.run(run())
        with Session(db) as s:
            assert all(_valid(x) for x in s.exec(select(Student)).scalars())
    finally:
        db.dispose()
