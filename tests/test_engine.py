"""The engine itself: dedupe, durable state across engines, stale keys, commands mid-form, cancel, back, skip,
edit from the summary, deactivated people, wrong input kinds, flood control, apologies for bugs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from conversations.flood import FloodGate, Verdict
from core.messages import Incoming
from storage.models import Conversation, ProcessedMessage, Staff, Student
from tests.engine_helpers import CONSENT, CONSENT_LABEL, Chat, fill, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


@pytest.fixture
async def teacher(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["teacher_a"])


def _count(db, model) -> int:
    with Session(db) as s:
        return s.exec(select(func.count()).select_from(model)).one()[0]


def _conv(db, staff_id: int) -> Conversation | None:
    with Session(db) as s:
        return s.exec(select(Conversation).where(Conversation.staff_id == staff_id)).scalars().first()


FIRST_ANSWERS = ("/dangky", CONSENT, "Nguyễn Văn An", "05/09/2012", "3/2")


async def test_menu_lists_the_role_commands(eng, sqlite_world) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/menu")
    keys = [o.key for o in teacher.options]
    assert "/dangky" in keys and "/cuatoi" in keys and "/tonghop" in keys
    assert "/duyet" not in keys and "/taoma" not in keys and "/xuatfile" not in keys
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/start")
    assert "Nguyễn Thị Lan" in principal.text and "hiệu trưởng" in principal.text
    assert {"/dangky", "/duyet", "/chotbaocao", "/xuatfile", "/taoma"} <= {o.key for o in principal.options}
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/menu")
    assert {o.key for o in officer.options} == {
        "/tonghop",
        "/xuatfile",
        "/xuatfilemk",
        "/xoahs",
        "/web",
        "/taoma",
        "/maunhap",
    }


async def test_menu_button_starts_the_form(teacher) -> None:
    await teacher.say("/menu")
    await teacher.tap("/dangky")
    await teacher.tap(CONSENT_LABEL)
    assert "Họ và tên học sinh" in teacher.text


async def test_help_explains_commands(teacher) -> None:
    await teacher.say("/trogiup")
    assert "/dangky" in teacher.text and "/huy" in teacher.text and "Lê Minh Tiến" in teacher.text


async def test_progress_is_saved_after_every_step_and_a_new_engine_resumes(
    eng, teacher, sqlite_engine, sqlite_world, programme, clock
) -> None:
    await fill(teacher, *FIRST_ANSWERS)
    conv = _conv(sqlite_engine, sqlite_world.teacher_a)
    assert conv is not None and conv.form == "dangky" and conv.step == "code"
    assert conv.data["v"]["full_name"] == "Nguyễn Văn An"
    # A restart: a brand-new engine over the same database continues at the same question.
    fresh = make_engine(sqlite_engine, programme, clock)
    again = Chat(fresh, teacher.user_id)
    await again.say("0123456789")
    assert "Giới tính" in again.text
    await fill(again, "tap:Nam", "tap:Hộ nghèo", "tap:Máy tính", "tap:Bỏ qua", "tap:Bỏ qua", "tap:Bỏ qua")
    await again.tap("Lưu")
    assert "Đã lưu" in again.text
    assert _conv(sqlite_engine, sqlite_world.teacher_a) is None
    assert _count(sqlite_engine, Student) == 1


async def test_redelivered_message_is_processed_once(eng, teacher, sqlite_engine) -> None:
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    await teacher.send(text="Nguyễn Văn An", message_id="tg-77")
    assert "Ngày sinh" in teacher.text
    assert await teacher.resend() == []
    await teacher.say("05/09/2012")
    assert "Lớp" in teacher.text  # the duplicate did not advance or confuse the form
    assert _count(sqlite_engine, ProcessedMessage) >= 3


async def test_stale_and_forged_keys_are_refused_and_the_question_repeated(teacher) -> None:
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    await fill(teacher, "Nguyễn Văn An", "05/09/2012", "3/2", "0123456789")
    old_key = teacher.key("Nam")
    await teacher.tap("Nữ")
    assert "đối tượng" in teacher.text
    await teacher.tap_key(old_key)  # a button from the previous question
    assert "hết hạn" in teacher.text and "đối tượng" in teacher.text
    await teacher.tap_key("zzzzzz.0")
    assert "hết hạn" in teacher.text
    q = teacher.options[0].key.split(".")[0]
    await teacher.tap_key(f"{q}.99")  # the right nonce, an index never offered
    assert "hết hạn" in teacher.text


async def test_stale_key_outside_a_form(teacher) -> None:
    await teacher.tap_key("abcdef.1")
    assert "hết hạn" in teacher.text and teacher.options  # with the menu


async def test_cancel_saves_nothing(teacher, sqlite_engine, sqlite_world) -> None:
    await fill(teacher, *FIRST_ANSWERS)
    await teacher.say("/huy")
    assert "Đã hủy" in teacher.text and "Không có gì được lưu" in teacher.text
    assert _conv(sqlite_engine, sqlite_world.teacher_a) is None
    await fill(teacher, *FIRST_ANSWERS)
    await teacher.say("Hủy")  # typed, with accents
    assert "Đã hủy" in teacher.text
    await teacher.say("huy")
    assert "Không có việc nào" in teacher.text
    assert _count(sqlite_engine, Student) == 0


async def test_back_returns_one_step(teacher) -> None:
    await fill(teacher, *FIRST_ANSWERS)
    await teacher.say("quay lại")
    assert "Lớp?" in teacher.text
    await teacher.tap("Quay lại")
    assert "Ngày sinh" in teacher.text
    await fill(teacher, "06/10/2012", "4A")
    assert "Mã định danh" in teacher.text


async def test_back_on_the_first_question(teacher) -> None:
    await teacher.say("/dangky")
    await teacher.say("quay lai")
    assert "câu hỏi đầu tiên" in teacher.text and "đồng ý" in teacher.text
    await teacher.tap(CONSENT_LABEL)
    await teacher.say("quay lai")  # back from the name: the consent question again
    assert "Phụ huynh của em đã đồng ý chưa?" in teacher.text


async def test_commands_in_the_middle_of_a_form(teacher) -> None:
    await fill(teacher, *FIRST_ANSWERS)
    await teacher.say("/menu")
    assert "Bạn đang điền" in teacher.text and "Mã định danh" in teacher.text  # menu, then the same question
    await teacher.say("/trogiup")
    assert "Hướng dẫn" in teacher.text and "Mã định danh" in teacher.text
    await teacher.say("/cuatoi")
    assert "Bạn đang điền «Đăng ký học sinh cần hỗ trợ»" in teacher.text and "/huy" in teacher.text
    assert "Mã định danh" in teacher.text
    await teacher.say("/khonglenh")
    assert "Không có lệnh /khonglenh" in teacher.text
    await teacher.say("0123456789")
    assert "Giới tính" in teacher.text  # the form went on untouched


async def test_wrong_kind_of_input(teacher) -> None:
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    await teacher.photo(b"\xff\xd8\xff fake jpeg")
    assert "chưa cần ảnh" in teacher.text and "Họ và tên" in teacher.text
    await teacher.send(unsupported=True)
    assert "chưa đọc được" in teacher.text and "Họ và tên" in teacher.text


async def test_photo_outside_any_form(teacher) -> None:
    await teacher.photo(b"\xff\xd8\xff")
    assert "không điền mục nào cần ảnh" in teacher.text.lower() or "/bangiao" in teacher.text


async def test_typed_options_with_and_without_accents(teacher) -> None:
    await fill(teacher, "/dangky", CONSENT, "Nguyễn Văn An", "05/09/2012", "3/2", "0123456789", "nu")
    assert "đối tượng" in teacher.text
    await teacher.say("ngheo")  # fits "Hộ nghèo" and "Hộ cận nghèo": asked again, not guessed
    assert "khớp nhiều lựa chọn" in teacher.text
    await teacher.say("xyz")
    assert "không khớp" in teacher.text
    await teacher.say("can ngheo")
    assert "cần hỗ trợ gì" in teacher.text
    await teacher.say("3")  # by number
    assert "giám hộ" in teacher.text
    await fill(teacher, "bỏ qua", "bo qua", "Bỏ qua")
    assert "Hộ cận nghèo" in teacher.text and "Cả hai" in teacher.text and "Nữ" in teacher.text


async def test_edit_from_summary_returns_to_summary_and_asks_new_conditional_fields(teacher, sqlite_engine) -> None:
    await fill(
        teacher,
        "/dangky",
        CONSENT,
        "Nguyễn Văn An",
        "05/09/2012",
        "3/2",
        "0123456789",
        "tap:Nam",
        "tap:Hộ nghèo",
        "tap:Máy tính",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
    )
    assert "Kiểm tra lại" in teacher.text
    await teacher.tap("Sửa một mục")
    await teacher.tap("Đối tượng")
    await teacher.tap("Khó khăn khác")
    assert "Hoàn cảnh khó khăn" in teacher.text  # newly required by the new category
    await teacher.say("Nhà ở xa, bố mẹ làm thuê")
    assert "Kiểm tra lại" in teacher.text and "Khó khăn khác" in teacher.text and "Nhà ở xa" in teacher.text
    await teacher.tap("Sửa một mục")
    await teacher.tap("Đối tượng")
    await teacher.tap("Hộ nghèo")
    assert "Kiểm tra lại" in teacher.text and "Nhà ở xa" not in teacher.text  # dropped with its condition
    await teacher.tap("Sửa một mục")
    await teacher.tap("Quay lại")
    assert "Kiểm tra lại" in teacher.text
    await teacher.tap("Lưu")
    with Session(sqlite_engine) as s:
        st = s.exec(select(Student)).scalars().one()
    assert st.category == "poor" and st.hardship_reason is None


async def test_summary_cancel(teacher, sqlite_engine) -> None:
    await fill(
        teacher,
        "/dangky",
        CONSENT,
        "Nguyễn Văn An",
        "05/09/2012",
        "3/2",
        "0123456789",
        "tap:Nam",
        "tap:Hộ nghèo",
        "tap:Máy tính",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Hủy",
    )
    assert "Đã hủy" in teacher.text and _count(sqlite_engine, Student) == 0


async def test_deactivated_person_is_refused_with_whom_to_ask(eng, sqlite_engine, sqlite_world) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a2"])
    await fill(teacher, *FIRST_ANSWERS)
    with Session(sqlite_engine) as s:
        st = s.get(Staff, sqlite_world.teacher_a2)
        st.active = False
        s.add(st)
        s.commit()
    for message in ("0123456789", "/menu", "/start", "/dangky"):
        await teacher.say(message)
        assert "ngừng hoạt động" in teacher.text and "Lê Minh Tiến" in teacher.text and "0913 860 438" in teacher.text
        assert not teacher.options


async def test_a_bug_in_a_form_is_an_apology_and_the_state_is_kept(
    eng, teacher, sqlite_engine, sqlite_world, caplog
) -> None:
    await fill(teacher, *FIRST_ANSWERS)
    from conversations.forms import register

    def boom(text, ctx):
        raise RuntimeError("bug in a parser")

    object.__setattr__(register.F_CODE, "parse", boom)
    try:
        with caplog.at_level(logging.ERROR):
            await teacher.say("0123456789")
        assert "Xin lỗi" in teacher.text
        assert "bug in a parser" in caplog.text  # logged with its traceback
    finally:
        object.__setattr__(register.F_CODE, "parse", register._parse_code)
    conv = _conv(sqlite_engine, sqlite_world.teacher_a)
    assert conv is not None and conv.step == "code"
    await teacher.say("0123456789")  # the retry works
    assert "Giới tính" in teacher.text


async def test_unknown_form_in_saved_state_is_cleared(eng, teacher, sqlite_engine, sqlite_world) -> None:
    await fill(teacher, *FIRST_ANSWERS)
    with Session(sqlite_engine) as s:
        conv = s.exec(select(Conversation)).scalars().one()
        conv.form = "retired_form"
        s.add(conv)
        s.commit()
    await teacher.say("hello")
    assert "không còn nữa" in teacher.text and _conv(sqlite_engine, sqlite_world.teacher_a) is None


async def test_form_belongs_to_the_channel_it_was_started_on(eng, sqlite_world) -> None:
    tg = await Chat.linked(eng, sqlite_world.phones["teacher_a"], channel="telegram", user_id="tg1")
    zalo = await Chat.linked(eng, sqlite_world.phones["teacher_a"], channel="zalo", user_id="za1")
    await fill(tg, *FIRST_ANSWERS)
    await zalo.say("0123456789")
    assert "trên Telegram" in zalo.text
    await zalo.say("/dangky")
    assert "trên Telegram" in zalo.text
    await tg.say("0123456789")
    assert "Giới tính" in tg.text


# --- flood control ---------------------------------------------------------------------------------------------


def test_flood_gate_counts_per_person_within_a_minute(clock) -> None:
    gate = FloodGate(limit_per_minute=3)
    now = clock.now()
    assert [gate.check("telegram", "a", now) for _ in range(3)] == [Verdict.ALLOW] * 3
    assert gate.check("telegram", "a", now) is Verdict.WARN
    assert gate.check("telegram", "a", now) is Verdict.DROP
    assert gate.check("telegram", "b", now) is Verdict.ALLOW  # someone else is not affected
    assert gate.check("zalo", "a", now) is Verdict.ALLOW
    assert gate.check("telegram", "a", now + timedelta(seconds=61)) is Verdict.ALLOW


async def test_flooding_is_slowed_without_affecting_others(sqlite_engine, sqlite_world, programme, clock) -> None:
    eng = make_engine(sqlite_engine, programme, clock, flood_limit_per_minute=5)
    a = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    b = await Chat.linked(eng, sqlite_world.phones["teacher_b"])
    for _ in range(5):
        await a.say("/menu")
        assert a.options
    before = _count(sqlite_engine, ProcessedMessage)
    await a.say("/menu")
    assert "nhanh quá" in a.text
    await a.say("/menu")
    assert a.replies == []  # dropped silently, not stored
    assert _count(sqlite_engine, ProcessedMessage) == before
    await b.say("/menu")
    assert b.options
    clock.advance(timedelta(seconds=61))
    await a.say("/menu")
    assert a.options


async def test_messages_without_id_are_not_deduped(eng, teacher) -> None:
    for _ in range(2):
        replies = await teacher.deliver(
            Incoming(
                channel="telegram",
                user_id=teacher.user_id,
                chat_id=teacher.chat_id,
                received_at=eng.clock.now(),
                text="/menu",
            )
        )
        assert replies


# --- the same fast path on PostgreSQL ----------------------------------------------------------------------------


async def test_fast_path_on_both_databases(db_engine, world, programme, clock) -> None:
    """Dedupe, durable state, resume on a new engine and the form's record, on SQLite and PostgreSQL."""
    eng = make_engine(db_engine, programme, clock)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])
    await teacher.send(text="/dangky", message_id="pg-1")
    assert "đồng ý" in teacher.text
    assert await teacher.resend() == []
    await teacher.say("1")  # the consent's first option, typed
    await fill(teacher, "Nguyễn Văn An", "05/09/2012", "3/2")
    again = Chat(make_engine(db_engine, programme, clock), teacher.user_id)
    await fill(
        again,
        "0123456789",
        "tap:Nam",
        "tap:Hộ nghèo",
        "tap:Máy tính",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Lưu",
    )
    assert "Đã lưu" in again.text
    assert _count(db_engine, Student) == 1 and _conv(db_engine, world.teacher_a) is None


async def test_only_steps_that_write_a_record_wait_for_the_disk(
    db_engine, world, programme, clock, monkeypatch
) -> None:
    """Checking an answer against the database (a student code already taken) opens the form's session but
    writes nothing: that step commits relaxed like any progress step; the step that saves the record (and its
    audit line) commits durably."""
    import conversations.engine as engine_module

    durable: list[bool] = []
    real = engine_module.commit_step

    def spy(conn, **kw):
        durable.append(kw["durable"])
        return real(conn, **kw)

    eng = make_engine(db_engine, programme, clock)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])
    monkeypatch.setattr(engine_module, "commit_step", spy)
    await fill(teacher, *FIRST_ANSWERS, "0123456789", "tap:Nam", "tap:Hộ nghèo", "tap:Máy tính")
    await fill(teacher, "tap:Bỏ qua", "tap:Bỏ qua", "tap:Bỏ qua")
    assert durable == [False] * 12  # the code step read the student table; nothing was written
    await teacher.tap("Lưu")
    assert "Đã lưu" in teacher.text and durable[-1] is True
    assert _count(db_engine, Student) == 1 and _conv(db_engine, world.teacher_a) is None


async def test_one_log_line_per_update_without_personal_data(eng, sqlite_world, caplog) -> None:
    chat = Chat(eng, "4242")
    with caplog.at_level(logging.INFO, logger="conversations.engine"):
        await chat.contact(sqlite_world.phones["teacher_a"])
        await chat.say("/dangky")
        await chat.tap(CONSENT_LABEL)
        await chat.say("Nguyễn Văn An")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("update handled")]
    assert len(lines) == 4
    assert f"staff={sqlite_world.teacher_a} form=dangky step=birth_date" in lines[-1] and "ms=" in lines[-1]
    assert "staff=unlinked" in lines[0]
    text = caplog.text
    assert sqlite_world.phones["teacher_a"] not in text and "901000002" not in text and "Nguyễn Văn An" not in text


async def test_unknown_and_linking_on_both_databases(db_engine, world, programme, clock) -> None:
    eng = make_engine(db_engine, programme, clock)
    chat = Chat(eng, "5005")
    await chat.say("/start")
    assert chat.replies[0].request_contact
    assert await chat.resend() == []
    await chat.contact(world.phones["teacher_a"])
    assert "Đã liên kết" in chat.text and "/dangky" in [o.key for o in chat.options]
    await chat.say("/menu")
    assert "/dangky" in [o.key for o in chat.options]


def test_claim_and_load_relaxes_only_progress_commits(db_engine, world, clock) -> None:
    from sqlalchemy import text

    from conversations.state import claim_and_load, require_durable_commit

    with db_engine.connect() as conn, conn.begin():
        fresh, sender = claim_and_load(
            conn, channel="telegram", message_id="x-1", external_id="nobody", now=clock.now()
        )
        assert fresh and sender is None
        again, _ = claim_and_load(conn, channel="telegram", message_id="x-1", external_id="nobody", now=clock.now())
        assert not again
        if conn.dialect.name == "postgresql":
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
            require_durable_commit(conn)
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
