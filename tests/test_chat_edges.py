"""Rough edges of the chat a new user hits (issue 13): blank messages, /help, /menu in the middle of a
form, the console's /thoat and /anh, the renamed /taoma."""

from __future__ import annotations

import io

import pytest

from bot.console import GOODBYE, PHOTO_USAGE, ConsoleChannel
from conversations.forms import registry
from conversations.forms.base import Person
from conversations.menu import COMMANDS, help_message, menu_message
from core.i18n import T
from core.vocabulary import Role
from tests.engine_helpers import CONSENT_LABEL, Chat, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
async def test_a_blank_message_gets_an_answer(eng, sqlite_world, blank) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say(blank)
    assert "Bạn muốn làm gì" in teacher.text and teacher.has_option("/dangky")  # the menu, no silence
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    await teacher.say(blank)
    assert "Họ và tên học sinh" in teacher.text  # the current question again


async def test_a_blank_line_in_the_console_gets_an_answer(eng, sqlite_world, clock, tmp_path) -> None:
    user = "console:0901000002"
    eng.link_directly(channel="console", external_id=user, chat_id="console", phone="0901000002")
    console = ConsoleChannel(eng.handle, user_id=user, clock=clock, media_dir=tmp_path)
    out = io.StringIO()
    await console.run(["/dangky", "1", "   "], out)  # 1: the guardian agreed
    assert out.getvalue().count("Họ và tên học sinh") == 2


async def test_thoat_says_goodbye_and_anh_without_a_path_shows_usage(eng, sqlite_world, clock, tmp_path) -> None:
    user = "console:0901000002"
    eng.link_directly(channel="console", external_id=user, chat_id="console", phone="0901000002")
    console = ConsoleChannel(eng.handle, user_id=user, clock=clock, media_dir=tmp_path)
    out = io.StringIO()
    await console.run(["/anh", "/anh   ", "/thoat", "/menu"], out)
    text = out.getvalue()
    assert text.count(PHOTO_USAGE) == 2 and "Không tìm thấy tệp ảnh: ." not in text
    assert text.rstrip().endswith(GOODBYE) and "Bạn muốn làm gì" not in text  # nothing after /thoat


def _person(role: str) -> Person:
    return Person(id=1, full_name="X", role=role, school_id=1, district_id=1)


@pytest.mark.parametrize("role", [Role.TEACHER, Role.PRINCIPAL, Role.DISTRICT_OFFICER])
async def test_help_lists_exactly_the_commands_of_the_role(eng, sqlite_world, role) -> None:
    phone = {Role.TEACHER: "teacher_a", Role.PRINCIPAL: "principal_a", Role.DISTRICT_OFFICER: "officer"}[role]
    chat = await Chat.linked(eng, sqlite_world.phones[phone])
    reg = registry()
    mine = {cmd for cmd, item in reg.primary().items() if role in item.roles}
    others = {cmd for cmd, item in reg.primary().items() if role not in item.roles}
    for command in ("/help", "/trogiup", "/HELP"):
        await chat.say(command)
        assert "Không có lệnh" not in chat.text and "Hướng dẫn" in chat.text, command
        for cmd in mine:
            assert f"/{cmd} —" in chat.text, (role, cmd)
        for cmd in others:
            assert f"/{cmd} —" not in chat.text, (role, cmd)
    assert help_message(_person(role)).text.count("/trogiup") == 1


async def test_menu_in_the_middle_of_a_form_leaves_digits_to_the_question(eng, sqlite_world) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"], channel="zalo")
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    for answer in ("Nguyễn Văn An", "05/09/2012", "4A1", "0123456789"):
        await teacher.say(answer)
    assert "Giới tính" in teacher.text
    await teacher.say("/menu")
    menu, question = teacher.replies[0], teacher.replies[-1]
    assert menu.options == [] and "/dangky —" in menu.text and "/bangiao —" in menu.text  # a note, no numbers
    assert "Giới tính" in question.text and [o.label for o in question.options][:2] == ["Nam", "Nữ"]
    assert [o.label for o in teacher.options][:2] == ["Nam", "Nữ"]  # the only numbered options on screen
    await teacher.say("2")
    assert "đối tượng" in teacher.text.lower()  # the digit answered the question (Nữ), not the menu
    await teacher.tap("Quay lại")
    await teacher.say("1")
    assert "đối tượng" in teacher.text.lower()


def test_menu_without_a_form_keeps_its_buttons() -> None:
    msg = menu_message(_person(Role.TEACHER))
    keys = [o.key for o in msg.options]
    assert keys[0] == "/dangky" and "/bangiao" in keys


async def test_taoma_is_the_vietnamese_name_and_maketoken_still_works(eng, sqlite_world) -> None:
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/menu")
    [item] = [o for o in officer.options if "taoma" in o.key]
    assert item.label.endswith("(/taoma)") and "giáo viên" not in item.label
    assert all("maketoken" not in o.key for o in officer.options)
    assert "taoma" in [c for c, _ in COMMANDS] and "maketoken" not in [c for c, _ in COMMANDS]
    for command in ("/taoma", "/maketoken"):
        await officer.say(f"{command} {sqlite_world.phones['principal_a']}")
        assert "Mã liên kết cho" in officer.text and "Nguyễn Thị Lan" in officer.text, command


@pytest.fixture
def notified(monkeypatch):
    """What the forms hand to ``ctx.notify`` (whatever the delivery path), rendered in Vietnamese."""
    from conversations.forms.base import FormContext

    sent: list[tuple[int, str]] = []
    original = FormContext.notify

    def record(self, staff_id, message, **values):
        sent.append((staff_id, message("vi", **values) if isinstance(message, T) else str(message)))
        return original(self, staff_id, message, **values)

    monkeypatch.setattr(FormContext, "notify", record)
    return sent


async def _register(chat: Chat, name: str, code: str) -> None:
    await chat.say("/dangky")
    await chat.tap(CONSENT_LABEL)
    for answer in (name, "05/09/2012", "4A1", code):
        await chat.say(answer)
    await chat.tap("Nam")
    await chat.tap("Hộ nghèo")
    await chat.tap("Máy tính")
    for _ in range(3):
        await chat.tap("Bỏ qua")
    await chat.tap("Lưu")
    assert "Đã lưu" in chat.text


async def test_each_notification_is_worded_for_its_recipient(eng, sqlite_world, notified) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await _register(teacher, "Nguyễn Văn An", "0123456789")
    assert [(who, "Đăng ký mới chờ duyệt" in text) for who, text in notified] == [(sqlite_world.principal_a, True)]
    notified.clear()
    await _register(principal, "Lê Thị Hoa", "0123456780")
    assert notified == []  # a principal's own registration needs no "new registration" note to themselves
    await principal.say("/duyet")
    await principal.tap("Đăng ký chờ duyệt")
    for _ in range(2):
        await principal.tap("Duyệt")
    # The teacher is told, in words for the teacher; the principal, who approved their own entry, is not.
    assert [who for who, _ in notified] == [sqlite_world.teacher_a]
    [(_, text)] = notified
    assert "Hiệu trưởng Nguyễn Thị Lan đã duyệt đăng ký em <b>Nguyễn Văn An</b>" in text and "mà bạn đã gửi" in text
    assert "Đã duyệt em" in principal.text and "Hiệu trưởng Nguyễn Thị Lan đã duyệt" not in principal.text


async def test_a_principals_own_registration_says_what_happens_next(eng, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await _register(principal, "Lê Thị Hoa", "0123456780")
    assert "Gõ /duyet để duyệt" in principal.text and "bạn sẽ nhận thông báo" not in principal.text


async def test_the_review_menu_has_a_way_out(eng, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    assert principal.labels[-1] == "↩ Thoát"
    await principal.tap("Thoát")
    assert "Đã thoát mục duyệt" in principal.text
    await principal.say("1")  # nothing in progress any more: a digit is not an answer to an old list
    assert "Bạn muốn làm gì" in principal.text
