"""Every example a form's prompt shows passes that field's own check, for a primary and a lower-secondary
school, on any day of the year — a person who copies the example is never told it is wrong."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

import pytest
from sqlmodel import Session

from conversations.fields import parse_birth_date, parse_class_name, parse_date
from conversations.forms import registry
from conversations.forms.base import FormContext, Invalid, Person
from core.clock import FixedClock
from core.i18n import T

DAYS = [
    date(2021, 11, 17),  # the letter's date (the tests' clock)
    date(2021, 12, 31),
    date(2022, 1, 1),
    date(2022, 9, 4),
    date(2022, 9, 5),
    date(2024, 2, 29),
    date(2026, 12, 3),  # the day the old example (05/09/2012) failed at a primary school
    date(2031, 6, 15),
]
LEVELS = ["TH", "THCS"]
EXAMPLE_WORDS = re.compile(r"ví dụ|e\.g\.", re.IGNORECASE)


def _ctx(session: Session, programme, *, level: str, day: date, lang: str = "vi") -> FormContext:
    now = datetime.combine(day, time(10, 0), tzinfo=programme.tz).astimezone(UTC)
    person = Person(
        id=1, full_name="Trần Văn Minh", role="teacher", school_id=1, district_id=1, school_level=level, language=lang
    )
    return FormContext(
        session_factory=lambda: session,
        staff=person,
        programme=programme,
        clock=FixedClock(now),
        now=now,
        lang=lang,
        values={},
    )


def _fields_with_prompts():
    for form in registry().forms.values():
        for f in form.fields:
            if isinstance(f.prompt, T):
                yield form, f


def test_every_prompt_that_shows_an_example_computes_it() -> None:
    """A fixed example in a prompt's text is what went wrong (05/09/2012, 6A1 at a primary school): a prompt
    that says "ví dụ" takes its example from the field, so the example test below covers it."""
    found = 0
    for form, f in _fields_with_prompts():
        for text in (f.prompt.vi, f.prompt.en):
            if EXAMPLE_WORDS.search(text):
                assert f.example is not None and "{example}" in text, (form.name, f.name, text)
                found += 1
    assert found >= 8  # name, birth date, class, quantity, brand, received date, sponsor, phone (vi + en)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("day", DAYS, ids=str)
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_each_example_passes_its_field(sqlite_engine, programme, level, day, lang) -> None:
    checked = 0
    with Session(sqlite_engine) as session:
        for form, f in _fields_with_prompts():
            if f.example is None:
                continue
            ctx = _ctx(session, programme, level=level, day=day, lang=lang)
            prompt = f.prompt_text(ctx)
            example = f.example(ctx)
            assert example in prompt, (form.name, f.name, prompt)
            for one in example.split(", "):
                try:
                    f.parse(one, ctx) if f.parse is not None else one
                except Invalid as exc:
                    pytest.fail(f"{form.name}.{f.name}: example {one!r} refused on {day} ({level}): {exc.text('vi')}")
                checked += 1
    assert checked >= 10


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("day", DAYS, ids=str)
def test_error_messages_suggest_examples_that_pass(sqlite_engine, programme, level, day) -> None:
    """The "wrong shape" messages of the birth date, the class and any date show an example: it passes too."""
    with Session(sqlite_engine) as session:
        ctx = _ctx(session, programme, level=level, day=day)
        for parse, bad in ((parse_birth_date, "abc"), (parse_class_name, "lớp năm"), (parse_date, "32-x")):
            with pytest.raises(Invalid) as err:
                parse(bad, ctx)
            shown = re.search(r"ví dụ:? ([^.]+(?:\.\d+)*)\.?$", err.value.text("vi"))
            assert shown, err.value.text("vi")
            for one in shown.group(1).split(", "):
                parse(one, ctx)
