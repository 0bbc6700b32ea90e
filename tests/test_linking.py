"""Linking chat accounts: own contact, someone else's contact, unknown phone, deactivated person, emailed code,
a principal's /maketoken code, expiry, single use, the 5-wrong-codes lock, re-linking."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from conversations.linking import issue_link_code, redeem_link_code
from storage.models import AuditEvent, ChatIdentity, LinkCode
from tests.engine_helpers import Chat, make_engine


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = False

    async def __call__(self, to: str, subject: str, body: str) -> None:
        if self.fail:
            raise OSError("smtp down")
        self.sent.append((to, subject, body))

    def code(self) -> str:
        return re.search(r"\b(\d{6})\b", self.sent[-1][2]).group(1)


@pytest.fixture
def mail() -> Outbox:
    return Outbox()


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock, mail):
    return make_engine(sqlite_engine, programme, clock, mailer=mail)


def _identities(db) -> list[ChatIdentity]:
    with Session(db) as s:
        return list(s.exec(select(ChatIdentity)).scalars().all())


async def test_start_from_unknown_account_asks_for_the_contact(eng) -> None:
    chat = Chat(eng, "1001")
    await chat.say("/start")
    assert chat.replies[0].request_contact and "Chia sẻ số điện thoại" in chat.text
    await chat.say("/dangky")  # anything else: still only linking
    assert chat.replies[0].request_contact and "liên kết" in chat.text
    zalo = Chat(eng, "z-1", channel="zalo")
    await zalo.say("xin chào")
    assert not zalo.replies[0].request_contact and "gõ số điện thoại" in zalo.text


async def test_own_contact_links_and_greets_with_the_menu(eng, sqlite_engine, sqlite_world) -> None:
    chat = Chat(eng, "1001")
    await chat.contact("0901 000 002")
    assert "Đã liên kết" in chat.text and "Trần Văn Minh" in chat.text and "giáo viên" in chat.text
    assert "/dangky" in [o.key for o in chat.options]
    [ident] = _identities(sqlite_engine)
    assert (ident.staff_id, ident.channel, ident.external_id) == (sqlite_world.teacher_a, "telegram", "1001")


async def test_someone_elses_contact_is_refused(eng, sqlite_engine, sqlite_world) -> None:
    chat = Chat(eng, "1001")
    await chat.contact(sqlite_world.phones["principal_a"], user_id="2002")  # forwarded
    assert "chính bạn" in chat.text
    await chat.contact(sqlite_world.phones["principal_a"], user_id=None)  # typed into the phone book
    assert "chính bạn" in chat.text
    assert _identities(sqlite_engine) == []


async def test_unknown_phone_is_refused_naming_the_district_contact(eng, sqlite_engine) -> None:
    chat = Chat(eng, "1001")
    await chat.contact("0987654321")
    assert "không có trong danh sách" in chat.text and "Lê Minh Tiến" in chat.text and "0913 860 438" in chat.text
    await chat.say("0987654321")
    assert "không có trong danh sách" in chat.text
    assert _identities(sqlite_engine) == []


async def test_deactivated_roster_person_cannot_link(eng, sqlite_engine, sqlite_world) -> None:
    chat = Chat(eng, "1001")
    await chat.contact(sqlite_world.phones["inactive_teacher_a"])
    assert "ngừng hoạt động" in chat.text and "Lê Minh Tiến" in chat.text
    await chat.say(sqlite_world.phones["inactive_teacher_a"])
    assert "ngừng hoạt động" in chat.text
    assert _identities(sqlite_engine) == []


async def test_emailed_code_links_once(eng, mail, sqlite_engine, sqlite_world) -> None:
    chat = Chat(eng, "z-77", channel="zalo")
    await chat.say("0901.000.003")  # Lý Thu Hà has an email
    assert "h***@phuhoa1.example" in chat.text and mail.sent[0][0] == "ha@phuhoa1.example"
    code = mail.code()
    with Session(sqlite_engine) as s:
        stored = s.exec(select(LinkCode)).scalars().one()
    assert code not in stored.code_hash  # only a hash is stored
    await chat.say(code)
    assert "Đã liên kết" in chat.text and "Lý Thu Hà" in chat.text
    # Single use: another account cannot reuse it.
    other = Chat(eng, "z-88", channel="zalo")
    await other.say("0901000003")
    await other.say(code)
    assert "không đúng" in other.text


async def test_code_email_is_not_resent_within_two_minutes(eng, mail, clock) -> None:
    chat = Chat(eng, "z-77", channel="zalo")
    await chat.say("0901000003")
    await chat.say("0901000003")
    assert len(mail.sent) == 1 and "vừa được gửi" in chat.text
    clock.advance(timedelta(minutes=3))
    await chat.say("0901000003")
    assert len(mail.sent) == 2


async def test_email_failure_is_explained(eng, mail) -> None:
    mail.fail = True
    chat = Chat(eng, "z-77", channel="zalo")
    await chat.say("0901000003")
    assert "Chưa gửi được email" in chat.text


async def test_code_expires_after_15_minutes(eng, mail, clock) -> None:
    chat = Chat(eng, "z-77", channel="zalo")
    await chat.say("0901000003")
    clock.advance(timedelta(minutes=16))
    await chat.say(mail.code())
    assert "không đúng hoặc đã hết hạn" in chat.text


async def test_no_email_means_ask_the_principal_who_makes_a_code(eng, sqlite_world) -> None:
    teacher = Chat(eng, "z-5", channel="zalo")
    await teacher.say("0901000002")  # Trần Văn Minh: no email on the roster
    assert "hiệu trưởng" in teacher.text and "/taoma" in teacher.text
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/maketoken 0901 000 002")
    assert "Trần Văn Minh" in principal.text
    code = re.search(r"\b(\d{6})\b", principal.text).group(1)
    await teacher.say(code)
    assert "Đã liên kết" in teacher.text and "Trần Văn Minh" in teacher.text


async def test_maketoken_is_limited_to_the_principals_school_and_the_officers_district(eng, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/maketoken")
    assert "Số điện thoại" in principal.text
    await principal.say(sqlite_world.phones["teacher_b"])  # school B
    assert "không thuộc trường" in principal.text and not re.search(r"\b\d{6}\b", principal.text)
    await principal.say("0999")  # not a phone
    assert "không hợp lệ" in principal.text
    await principal.say(sqlite_world.phones["teacher_a2"])
    assert re.search(r"<code>\d{6}</code>", principal.replies[0].text)
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say(f"/maketoken {sqlite_world.phones['teacher_b']}")
    assert re.search(r"\b\d{6}\b", officer.text)
    await officer.say(f"/maketoken {sqlite_world.phones['principal_other']}")  # another district
    assert "không thuộc quận/huyện" in officer.text
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/maketoken 0901000003")
    assert "không dành cho giáo viên" in teacher.text


async def test_five_wrong_codes_lock_for_an_hour(eng, sqlite_engine, sqlite_world, clock) -> None:
    with Session(sqlite_engine) as s:
        code = issue_link_code(s, staff_id=sqlite_world.teacher_a, created_by=None, now=clock.now())
        s.commit()
    chat = Chat(eng, "z-9", channel="zalo")
    await chat.say("123456")
    assert "số điện thoại của bạn trước" in chat.text
    await chat.say("0901000002")
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        await chat.say(wrong)
        assert f"còn {left} lần" in chat.text
    await chat.say(wrong)
    assert "quá 5 lần" in chat.text
    await chat.say(code)  # even the right code is refused while locked
    assert "quá 5 lần" in chat.text and _identities(sqlite_engine) == []
    clock.advance(timedelta(minutes=61))
    with Session(sqlite_engine) as s:
        code = issue_link_code(s, staff_id=sqlite_world.teacher_a, created_by=None, now=clock.now())
        s.commit()
    await chat.say(code)
    assert "Đã liên kết" in chat.text
    with Session(sqlite_engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "link_locked")).first() is not None


async def test_redeem_checks_person_and_use(sqlite_engine, sqlite_world, clock) -> None:
    with Session(sqlite_engine) as s:
        code = issue_link_code(s, staff_id=sqlite_world.teacher_a, created_by=None, now=clock.now())
        assert not redeem_link_code(s, staff_id=sqlite_world.teacher_a2, code=code, now=clock.now())
        assert redeem_link_code(s, staff_id=sqlite_world.teacher_a, code=code, now=clock.now())
        assert not redeem_link_code(s, staff_id=sqlite_world.teacher_a, code=code, now=clock.now())


async def test_new_account_for_the_same_person_replaces_the_old_one(eng, sqlite_engine, sqlite_world) -> None:
    old = Chat(eng, "1001")
    await old.contact(sqlite_world.phones["teacher_a"])
    new = Chat(eng, "3003")  # a new phone, a new Telegram account
    await new.contact(sqlite_world.phones["teacher_a"])
    assert "Đã liên kết" in new.text
    assert [(i.external_id, i.staff_id) for i in _identities(sqlite_engine)] == [("3003", sqlite_world.teacher_a)]
    await old.say("/menu")
    assert old.replies[0].request_contact  # the old account is unknown again
    with Session(sqlite_engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "unlink")).first() is not None


async def test_linked_account_sharing_another_roster_phone_moves_with_an_audit(
    eng, sqlite_engine, sqlite_world
) -> None:
    chat = Chat(eng, "1001")
    await chat.contact(sqlite_world.phones["teacher_a"])
    await chat.contact(sqlite_world.phones["teacher_a"])
    assert "đã được liên kết với bạn" in chat.text
    await chat.contact(sqlite_world.phones["teacher_a2"])  # Telegram vouches: this account now has that phone
    assert "Lý Thu Hà" in chat.text
    [ident] = _identities(sqlite_engine)
    assert ident.staff_id == sqlite_world.teacher_a2
    with Session(sqlite_engine) as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "relink")).scalars().one()
    assert ev.before == {"staff_id": sqlite_world.teacher_a} and ev.after == {"staff_id": sqlite_world.teacher_a2}


async def test_link_directly_for_the_console(eng, sqlite_world) -> None:
    staff = eng.link_directly(channel="console", external_id="console:1", chat_id="console", phone="0901000002")
    assert staff.full_name == "Trần Văn Minh"
    with pytest.raises(LookupError, match="không có trong danh sách"):
        eng.link_directly(channel="console", external_id="console:2", chat_id="console", phone="0987654321")
    with pytest.raises(LookupError, match="ngừng hoạt động"):
        eng.link_directly(
            channel="console",
            external_id="console:3",
            chat_id="console",
            phone=sqlite_world.phones["inactive_teacher_a"],
        )
    with pytest.raises(LookupError):
        eng.link_directly(channel="console", external_id="console:4", chat_id="console", phone="abc")


async def test_with_an_operator_code_issued_no_email_is_claimed(eng, mail, sqlite_engine, sqlite_world, clock) -> None:
    """Issue 13: `fieldbot roster code` made a code, then typing the phone said a code was just e-mailed."""
    with Session(sqlite_engine) as s:
        code = issue_link_code(s, staff_id=sqlite_world.teacher_a2, created_by=None, now=clock.now())
        s.commit()
    chat = Chat(eng, "z-31", channel="zalo")
    await chat.say("0901000003")  # Lý Thu Hà has an e-mail address
    assert "email" not in chat.text.replace("bot không gửi email nào", "") and mail.sent == []
    assert "Quản trị viên hệ thống đã tạo một mã liên kết" in chat.text and "bot không gửi email nào" in chat.text
    await chat.say(code)
    assert "Đã liên kết" in chat.text


async def test_a_principals_code_is_named_as_theirs(eng, mail, sqlite_engine, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/taoma 0901000003")
    code = re.search(r"\b(\d{6})\b", principal.text).group(1)
    chat = Chat(eng, "z-32", channel="zalo")
    await chat.say("0901000003")
    assert "Nguyễn Thị Lan đã tạo một mã liên kết" in chat.text and mail.sent == []
    await chat.say(code)
    assert "Đã liên kết" in chat.text


async def test_after_a_failed_email_the_next_try_sends_again(eng, mail) -> None:
    mail.fail = True
    chat = Chat(eng, "z-33", channel="zalo")
    await chat.say("0901000003")
    assert "Chưa gửi được email" in chat.text
    mail.fail = False
    await chat.say("0901000003")  # not "a code was just e-mailed": none was
    assert "vừa được gửi" not in chat.text and len(mail.sent) == 1 and "h***@phuhoa1.example" in chat.text


async def test_without_a_mail_server_the_reply_says_so(sqlite_engine, sqlite_world, programme, clock) -> None:
    eng = make_engine(sqlite_engine, programme, clock)  # no mailer configured
    chat = Chat(eng, "z-34", channel="zalo")
    await chat.say("0901000003")  # has an e-mail address in the roster
    assert "chưa được cấu hình để gửi email" in chat.text and "Danh sách chưa có email" not in chat.text
