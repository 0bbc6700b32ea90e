"""Field kinds the student forms do not use, through a small form registered for the test: photos (one and
several, text instead of a photo, download only when a photo is wanted), multi-choice, numbers, defaults,
Done chaining, and the dedupe table's pruning."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from conversations.fields import (
    choice_field,
    date_field,
    multi_field,
    number_field,
    parse_past_date,
    photo_field,
)
from conversations.forms import registry
from conversations.forms.base import Choice, Done, Form, FormContext
from core.i18n import T
from core.messages import PhotoInput
from core.vocabulary import Role
from storage.models import Photo, ProcessedMessage
from storage.photos import PhotoStore
from tests.engine_helpers import Chat, make_engine
from tests.photo_factory import encode, scene

SAVED: list[dict] = []


def _save(ctx: FormContext) -> Done:
    SAVED.append(dict(ctx.values))
    return Done(T(vi="Đã lưu thử.", en="Saved."))


DEMO = Form(
    name="demo_kinds",
    command="demokinds",
    title=T(vi="Biểu mẫu thử", en="Demo"),
    roles=frozenset({Role.TEACHER}),
    fields=[
        number_field("qty", T(vi="Số lượng?", en="How many?"), T(vi="Số lượng", en="Quantity")),
        date_field(
            "day",
            T(vi="Ngày nhận?", en="Received on?"),
            T(vi="Ngày", en="Day"),
            parse=parse_past_date,
            default_today=True,
        ),
        multi_field(
            "colours",
            T(vi="Màu nào?", en="Which colours?"),
            T(vi="Màu", en="Colours"),
            [Choice("red", "Đỏ"), Choice("green", "Xanh lá"), Choice("blue", "Xanh dương")],
        ),
        photo_field(
            "scene",
            T(vi="Gửi ảnh bàn giao (1–3 ảnh).", en="Send 1-3 photos."),
            T(vi="Ảnh", en="Photos"),
            min_photos=1,
            max_photos=3,
        ),
        photo_field(
            "minutes",
            T(vi="Ảnh biên bản? (không bắt buộc)", en="Minutes? (optional)"),
            T(vi="Biên bản", en="Minutes"),
            required=False,
        ),
    ],
    on_complete=_save,
)


CHAIN_A = Form(
    name="chain_a",
    command="chaina",
    title=T(vi="A", en="A"),
    roles=frozenset({Role.TEACHER}),
    fields=[choice_field("go", T(vi="Tiếp?", en="Next?"), T(vi="Tiếp", en="Next"), [Choice(True, "Sang B")])],
    on_complete=lambda ctx: Done("A xong.", next_form="chain_b", next_values={"from_a": 42}),
    summary=False,
)
CHAIN_B = Form(
    name="chain_b",
    title=T(vi="B", en="B"),
    roles=frozenset({Role.TEACHER}),
    start=lambda ctx: Done(f"B bắt đầu với {ctx.values['from_a']}."),
    fields=[],
    on_complete=lambda ctx: Done(),
)


@pytest.fixture(autouse=True)
def demo_forms():
    reg = registry()
    for form in (DEMO, CHAIN_A, CHAIN_B):
        reg.forms[form.name] = form
        if form.command:
            reg.commands[form.command] = form
    SAVED.clear()
    yield
    for form in (DEMO, CHAIN_A, CHAIN_B):
        reg.forms.pop(form.name, None)
        if form.command:
            reg.commands.pop(form.command, None)


@pytest.fixture
def store(tmp_path) -> PhotoStore:
    return PhotoStore(tmp_path / "media")


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock, store, tmp_path):
    return make_engine(sqlite_engine, programme, clock, photos=store, media_dir=tmp_path / "media")


@pytest.fixture
async def teacher(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["teacher_a"])


def _jpeg(seed: int) -> bytes:
    return encode(scene(seed), "JPEG", quality=90)


async def test_number_questions_have_no_buttons_and_validate(teacher) -> None:
    await teacher.say("/demokinds")
    assert "Số lượng" in teacher.text and teacher.options == []  # "1" typed must stay a quantity
    for bad, why in (("0", "từ 1"), ("-5", "từ 1"), ("20000", "quá lớn"), ("năm", "số nguyên")):
        await teacher.say(bad)
        assert why in teacher.text
    await teacher.say("1")
    assert "Ngày nhận" in teacher.text


async def test_all_kinds_end_to_end(teacher, sqlite_engine, clock) -> None:
    await teacher.say("/demokinds")
    await teacher.say("12")
    await teacher.say("01/01/2030")
    assert "tương lai" in teacher.text
    await teacher.tap("Hôm nay (17/11/2021)")
    assert "Màu nào" in teacher.text
    await teacher.tap("Xong")
    assert "Chưa chọn" in teacher.text
    await teacher.tap("Đỏ")
    await teacher.tap("Xanh dương")
    await teacher.tap("Đỏ")  # tapped again: unselected
    assert "✓ Xanh dương" in teacher.labels and "✓ Đỏ" not in teacher.text
    await teacher.tap("Xong")
    assert "Gửi ảnh" in teacher.text
    await teacher.say("đây là ảnh")
    assert "cần gửi một ảnh" in teacher.text
    await teacher.tap("Xong")
    assert "ít nhất 1" in teacher.text
    await teacher.photo(_jpeg(1))
    assert "Đã nhận 1 ảnh" in teacher.text
    await teacher.photo(b"not an image at all")
    assert "không phải là ảnh" in teacher.text
    await teacher.photo(_jpeg(2))
    await teacher.say("xong")
    assert "biên bản" in teacher.text
    await teacher.tap("Bỏ qua")
    assert "Kiểm tra lại" in teacher.text and "2 ảnh" in teacher.text and "Xanh dương" in teacher.text
    await teacher.tap("Lưu")
    [saved] = SAVED
    assert saved["qty"] == 12 and saved["day"] == date(2021, 11, 17) and saved["colours"] == ["blue"]
    assert len(saved["scene"]) == 2 and saved["minutes"] is None
    with Session(sqlite_engine) as s:
        assert s.exec(select(func.count()).select_from(Photo)).one()[0] == 2


async def test_typed_multi_choice_numbers(teacher) -> None:
    await teacher.say("/demokinds")
    await teacher.say("3")
    await teacher.say("hôm nay")  # the default, typed
    assert "Màu nào" in teacher.text
    await teacher.say("1, 3")
    assert "Gửi ảnh" in teacher.text


async def test_photo_is_downloaded_only_when_a_photo_is_wanted(teacher) -> None:
    fetched: list[int] = []

    async def fetch() -> bytes:
        fetched.append(1)
        return _jpeg(3)

    await teacher.say("/demokinds")
    await teacher.send(photo=PhotoInput(fetch=fetch, size=1000))
    assert fetched == [] and "chưa cần ảnh" in teacher.text
    await teacher.send(photo=PhotoInput(fetch=fetch, size=50 * 1024 * 1024))
    assert fetched == []
    await teacher.say("2")
    await teacher.tap("Hôm nay")
    await teacher.say("1")
    await teacher.send(photo=PhotoInput(fetch=fetch, size=50 * 1024 * 1024))
    assert fetched == [] and "quá lớn" in teacher.text
    await teacher.send(photo=PhotoInput(fetch=fetch, size=1000))
    assert fetched == [1] and "Đã nhận 1 ảnh" in teacher.text


async def test_failed_download_is_explained(teacher) -> None:
    async def broken() -> bytes:
        raise OSError("network")

    await teacher.say("/demokinds")
    await teacher.say("2")
    await teacher.tap("Hôm nay")
    await teacher.say("1")
    await teacher.send(photo=PhotoInput(fetch=broken))
    assert "Không tải được ảnh" in teacher.text


async def test_photo_files_are_removed_when_the_step_fails(teacher, store, monkeypatch) -> None:
    await teacher.say("/demokinds")
    await teacher.say("2")
    await teacher.tap("Hôm nay")
    await teacher.say("1")
    from conversations import engine as engine_mod

    def explode(self, step):
        raise RuntimeError("database went away")

    monkeypatch.setattr(engine_mod.ConversationEngine, "_queue_notifications", explode)
    await teacher.photo(_jpeg(5))
    assert "Xin lỗi" in teacher.text
    assert not list((store.media_dir / "photos").rglob("*.jpg"))  # no orphan file for a rolled-back step


async def test_done_can_start_the_next_form(teacher) -> None:
    await teacher.say("/chaina")
    await teacher.tap("Sang B")
    assert "A xong." in teacher.text and "B bắt đầu với 42." in teacher.text


async def test_dedupe_records_are_pruned(eng, teacher, sqlite_engine, clock) -> None:
    await teacher.send(text="/menu", message_id="old-1")
    clock.advance(timedelta(days=4))
    eng._since_prune = 10**6  # due now
    await teacher.send(text="/menu", message_id="new-1")
    with Session(sqlite_engine) as s:
        ids = {r[0] for r in s.exec(select(ProcessedMessage.message_id)).all()}
    assert "old-1" not in ids and "new-1" in ids
