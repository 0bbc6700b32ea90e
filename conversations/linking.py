"""Linking a chat account to a roster person.

- Telegram: ``/start`` asks for the phone with the contact button; the shared contact must be the sender's
  own (``contact.user_id == sender``) and match an active roster phone.
- Any channel (Zalo and the console have no contact button; Telegram users may type): the person types
  their phone; if the roster has their email, a 6-digit code is emailed; otherwise their principal or the
  district officer makes one (``/taoma PHONE``, formerly ``/maketoken``, or ``fieldbot roster code PHONE``). Typing the code links.
  Codes are stored hashed, expire after 15 minutes, work once; 5 wrong codes lock the account's attempts
  for an hour.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from conversations.fields import phone_field
from conversations.forms.base import Done, Form, FormContext, Invalid, Person
from core.clock import fmt_local
from core.i18n import T
from core.messages import Incoming, Outgoing, esc
from core.phones import display_phone, mask_phone, normalize_phone
from core.ports import Mailer
from core.programme import Programme
from core.vocabulary import Role
from storage import audit, people
from storage.models import AuditEvent, LinkAttempt, LinkCode, Staff

CODE_TTL = timedelta(minutes=15)
MAX_FAILURES = 5
LOCK_FOR = timedelta(hours=1)
EMAIL_RESEND_AFTER = timedelta(minutes=2)


# --- texts ------------------------------------------------------------------------------------------------

ASK_CONTACT = T(
    vi="Chào bạn! Để dùng bot, bạn cần liên kết tài khoản với số điện thoại trong danh sách của trường.\n"
    "Bấm nút «📱 Chia sẻ số điện thoại» bên dưới, hoặc gõ số điện thoại của bạn.",
    en="Hello! To use this bot, link your account to your phone number on the school roster.\n"
    "Tap “📱 Share phone number” below, or type your phone number.",
)
ASK_PHONE = T(
    vi="Chào bạn! Để dùng bot, bạn cần liên kết tài khoản với số điện thoại trong danh sách của trường.\n"
    "Vui lòng gõ số điện thoại của bạn (dạng 0912 345 678).",
    en="Hello! To use this bot, link your account to your phone number on the school roster.\n"
    "Please type your phone number (like 0912 345 678).",
)
NOT_OWN_CONTACT = T(
    vi="Chỉ có thể liên kết bằng số điện thoại của chính bạn: hãy bấm nút «📱 Chia sẻ số điện thoại», "
    "không chuyển tiếp danh bạ của người khác.",
    en="You can only link with your own phone number: tap “📱 Share phone number”; do not forward someone "
    "else's contact.",
)
UNKNOWN_PHONE = T(
    vi="Số điện thoại {phone} không có trong danh sách cán bộ, giáo viên của chương trình. Nếu bạn là giáo "
    "viên hoặc hiệu trưởng, vui lòng liên hệ {contact} ({contact_phone}) để được thêm vào danh sách.",
    en="The phone number {phone} is not on the programme's staff roster. If you are a teacher or principal, "
    "please contact {contact} ({contact_phone}) to be added.",
)
DEACTIVATED = T(
    vi="Tài khoản của {name} đã ngừng hoạt động trong danh sách của chương trình, nên bot không thể xử lý "
    "yêu cầu. Nếu có nhầm lẫn, vui lòng liên hệ {contact} ({contact_phone}).",
    en="{name}'s account is no longer active on the programme roster, so the bot cannot help. If this is "
    "a mistake, please contact {contact} ({contact_phone}).",
)
LINKED = T(vi="✅ Đã liên kết tài khoản.", en="✅ Your account is linked.")
ALREADY_LINKED = T(vi="Tài khoản này đã được liên kết với bạn.", en="This account is already linked to you.")
CODE_EMAILED = T(
    vi="Mã liên kết gồm 6 chữ số đã được gửi tới email {email}. Gõ mã vào đây (mã có hiệu lực 15 phút).",
    en="A 6-digit link code was emailed to {email}. Type it here (valid for 15 minutes).",
)
CODE_RECENTLY_EMAILED = T(
    vi="Mã liên kết vừa được gửi tới email {email} — vui lòng kiểm tra hộp thư (cả mục Spam) và gõ mã vào đây.",
    en="A link code was just emailed to {email} — please check your inbox (and spam) and type it here.",
)
ASK_FOR_CODE = T(
    vi="Chào {name}! Danh sách chưa có email của bạn, nên bot không tự gửi mã được. Vui lòng xin mã liên kết "
    "6 số từ hiệu trưởng (lệnh /taoma) hoặc chuyên viên Phòng GD&ĐT, rồi gõ mã vào đây.",
    en="Hello {name}! The roster has no email for you, so the bot cannot send a code. Please ask your "
    "principal (/taoma) or the district officer for a 6-digit link code, then type it here.",
)
NO_MAILER = T(
    vi="Chào {name}! Bot chưa được cấu hình để gửi email, nên không tự gửi mã được. Vui lòng xin mã liên kết "
    "6 số từ hiệu trưởng (lệnh /taoma) hoặc chuyên viên Phòng GD&ĐT, rồi gõ mã vào đây.",
    en="Hello {name}! This bot is not set up to send e-mail, so it cannot send you a code. Please ask your "
    "principal (/taoma) or the district officer for a 6-digit link code, then type it here.",
)
CODE_MADE_BY = T(
    vi="Chào {name}! {by} đã tạo một mã liên kết 6 số cho bạn lúc {at} (dùng được đến {until}); bot không gửi "
    "email nào. Vui lòng lấy mã từ người đã tạo rồi gõ vào đây.",
    en="Hello {name}! {by} made a 6-digit link code for you at {at} (valid until {until}); the bot sent no "
    "e-mail. Please get the code from them and type it here.",
)
BY_OPERATOR = T(vi="Quản trị viên hệ thống", en="The system administrator")
# Audit actions on a link code: the bot made it to e-mail it, and the mail server took it. A code without the
# first was made by a person (a principal, the district officer, the operator's `fieldbot roster code`).
FOR_EMAIL = "link_code_for_email"
EMAILED = "link_code_emailed"
EMAIL_FAILED = T(
    vi="Chưa gửi được email chứa mã. Vui lòng thử lại sau ít phút, hoặc xin mã từ hiệu trưởng / chuyên viên "
    "Phòng GD&ĐT.",
    en="The email with the code could not be sent. Please try again in a few minutes, or ask your principal "
    "or the district officer for a code.",
)
PHONE_FIRST = T(
    vi="Vui lòng gõ số điện thoại của bạn trước, rồi mới gõ mã liên kết.",
    en="Please type your phone number first, then the link code.",
)
WRONG_CODE = T(
    vi="Mã không đúng hoặc đã hết hạn. Bạn còn {left} lần thử.", en="Wrong or expired code. {left} tries left."
)
LOCKED = T(
    vi="Bạn đã nhập sai mã quá {n} lần. Vui lòng thử lại sau {until}.",
    en="Too many wrong codes ({n}). Please try again after {until}.",
)
EMAIL_SUBJECT = T(vi="Mã liên kết bot “Sóng và máy tính cho em”", en="Your link code")
EMAIL_BODY = T(
    vi="Chào {name},\n\nMã liên kết tài khoản chat của bạn với bot chương trình “Sóng và máy tính cho em” là: "
    "{code}\n\nMã dùng một lần và hết hạn sau 15 phút. Nếu bạn không yêu cầu mã này, hãy bỏ qua email.\n",
    en="Hello {name},\n\nYour code to link your chat account: {code}\n\nIt works once and expires in 15 "
    "minutes. If you did not ask for it, ignore this email.\n",
)


# --- codes --------------------------------------------------------------------------------------------------


def _hash(staff_id: int, code: str) -> str:
    # Keyed by the person: the same 6 digits for two people never share a hash, and a leaked table does
    # not list usable codes (they also expire within 15 minutes).
    return hashlib.sha256(f"fieldbot-link:{staff_id}:{code}".encode()).hexdigest()


def issue_link_code(session: Session, *, staff_id: int, created_by: int | None, now: datetime) -> str:
    """A fresh 6-digit code for ``staff_id``: only its hash is stored; single use, expires in 15 minutes."""
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        LinkCode(
            staff_id=staff_id,
            code_hash=_hash(staff_id, code),
            created_by=created_by,
            created_at=now,
            expires_at=now + CODE_TTL,
        )
    )
    session.flush()
    return code


def redeem_link_code(session: Session, *, staff_id: int, code: str, now: datetime) -> bool:
    """True (and the code is spent) if ``code`` is a valid unused code of ``staff_id``."""
    wanted = _hash(staff_id, code.strip())
    rows = session.exec(
        select(LinkCode).where(LinkCode.staff_id == staff_id, LinkCode.used_at.is_(None), LinkCode.expires_at > now)
    ).all()
    for row in rows:
        if hmac.compare_digest(row.code_hash, wanted):
            row.used_at = now
            session.add(row)
            session.flush()
            return True
    return False


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


# --- unknown senders ------------------------------------------------------------------------------------------


@dataclass
class LinkStep:
    """What linking answered; ``linked``: the person now linked (the engine greets them with their menu);
    ``after_commit``: slow work (sending the email) done once the transaction is committed."""

    messages: list[Outgoing] = field(default_factory=list)
    linked: Staff | None = None
    after_commit: list[Callable[[], Awaitable[list[Outgoing]]]] = field(default_factory=list)


def contact_of(session: Session, programme: Programme, district_id: int | None) -> tuple[str, str]:
    code = people.district_code(session, district_id=district_id) if district_id is not None else None
    c = programme.contact_for(code or "")
    return c.name, display_phone(c.phone_e164)


def refusal_for(session: Session, programme: Programme, staff: Staff | Person, lang: str) -> Outgoing:
    name, phone = contact_of(session, programme, staff.district_id)
    return Outgoing(
        text=DEACTIVATED(lang, name=esc(staff.full_name), contact=name, contact_phone=phone), remove_keyboard=True
    )


def _unknown_phone(session: Session, programme: Programme, phone: str, lang: str) -> Outgoing:
    name, contact_phone = contact_of(session, programme, None)
    return Outgoing(
        text=UNKNOWN_PHONE(lang, phone=esc(phone), contact=name, contact_phone=contact_phone), remove_keyboard=True
    )


def _attempt(session: Session, channel: str, external_id: str, now: datetime) -> LinkAttempt:
    row = session.exec(
        select(LinkAttempt).where(LinkAttempt.channel == channel, LinkAttempt.external_id == external_id)
    ).first()
    if row is None:
        row = LinkAttempt(channel=channel, external_id=external_id[:64], failures=0, updated_at=now)
        session.add(row)
    return row


def _welcome_prompt(incoming: Incoming, lang: str) -> Outgoing:
    if incoming.channel == "telegram":
        return Outgoing(text=ASK_CONTACT(lang), request_contact=True)
    return Outgoing(text=ASK_PHONE(lang))


def handle_unknown(
    session: Session, incoming: Incoming, *, programme: Programme, now: datetime, mailer: Mailer | None, lang: str
) -> LinkStep:
    """A message from an account that is not linked to anyone: only linking is possible."""
    attempt = session.exec(
        select(LinkAttempt).where(LinkAttempt.channel == incoming.channel, LinkAttempt.external_id == incoming.user_id)
    ).first()
    if attempt is not None and attempt.locked_until is not None and attempt.locked_until > now:
        return LinkStep(
            [Outgoing(text=LOCKED(lang, n=MAX_FAILURES, until=fmt_local(attempt.locked_until, programme.tz)))]
        )
    if incoming.contact is not None:
        return _by_contact(session, incoming, programme=programme, now=now, lang=lang)
    text = (incoming.text or "").strip()
    if not text or incoming.command:
        return LinkStep([_welcome_prompt(incoming, lang)])
    compact = text.replace(" ", "")
    if compact.isdigit() and len(compact) == 6:
        return _by_code(session, incoming, compact, programme=programme, now=now, lang=lang)
    try:
        normalize_phone(text)
    except ValueError:
        return LinkStep([_welcome_prompt(incoming, lang)])
    return _by_typed_phone(session, incoming, text, programme=programme, now=now, mailer=mailer, lang=lang)


def _by_contact(session: Session, incoming: Incoming, *, programme: Programme, now: datetime, lang: str) -> LinkStep:
    contact = incoming.contact
    assert contact is not None
    if contact.user_id is None or contact.user_id != incoming.user_id:
        return LinkStep([Outgoing(text=NOT_OWN_CONTACT(lang), request_contact=incoming.channel == "telegram")])
    staff = people.find_staff_by_phone(session, phone=contact.phone)
    if staff is None:
        return LinkStep([_unknown_phone(session, programme, contact.phone, lang)])
    if not staff.active:
        return LinkStep([refusal_for(session, programme, staff, lang)])
    people.link_identity(
        session,
        staff_id=staff.id,
        channel=incoming.channel,
        external_id=incoming.user_id,
        chat_id=incoming.chat_id,
        now=now,
    )
    return LinkStep([Outgoing(text=LINKED(lang), remove_keyboard=True)], linked=staff)


def _by_typed_phone(
    session: Session,
    incoming: Incoming,
    text: str,
    *,
    programme: Programme,
    now: datetime,
    mailer: Mailer | None,
    lang: str,
) -> LinkStep:
    staff = people.find_staff_by_phone(session, phone=text)
    if staff is None:
        return LinkStep([_unknown_phone(session, programme, text, lang)])
    if not staff.active:
        return LinkStep([refusal_for(session, programme, staff, lang)])
    attempt = _attempt(session, incoming.channel, incoming.user_id, now)
    attempt.staff_id = staff.id
    attempt.updated_at = now
    session.add(attempt)
    session.flush()
    emailed = select(AuditEvent.entity_id).where(AuditEvent.action == EMAILED, AuditEvent.entity == "link_code")
    for_email = select(AuditEvent.entity_id).where(AuditEvent.action == FOR_EMAIL, AuditEvent.entity == "link_code")
    made = session.exec(
        select(LinkCode)
        .where(
            LinkCode.staff_id == staff.id,
            LinkCode.used_at.is_(None),
            LinkCode.expires_at > now,
            LinkCode.id.not_in(for_email),
        )
        .order_by(LinkCode.created_at.desc(), LinkCode.id.desc())
    ).first()
    if made is not None:
        # A principal, the district officer or the operator (``fieldbot roster code``) made a code: say so,
        # and do not pretend an e-mail went out.
        creator = session.get(Staff, made.created_by) if made.created_by is not None else None
        by = esc(creator.full_name) if creator is not None else BY_OPERATOR(lang)
        text = CODE_MADE_BY(
            lang,
            name=esc(staff.full_name),
            by=by,
            at=fmt_local(made.created_at, programme.tz),
            until=fmt_local(made.expires_at, programme.tz),
        )
        return LinkStep([Outgoing(text=text)])
    if not staff.email:
        return LinkStep([Outgoing(text=ASK_FOR_CODE(lang, name=esc(staff.full_name)))])
    if mailer is None:
        return LinkStep([Outgoing(text=NO_MAILER(lang, name=esc(staff.full_name)))])
    masked = mask_email(staff.email)
    recent = session.exec(
        select(LinkCode).where(
            LinkCode.staff_id == staff.id,
            LinkCode.used_at.is_(None),
            LinkCode.created_at > now - EMAIL_RESEND_AFTER,
            LinkCode.id.in_(emailed),
        )
    ).first()
    if recent is not None:
        return LinkStep([Outgoing(text=CODE_RECENTLY_EMAILED(lang, email=esc(masked)))])
    code = issue_link_code(session, staff_id=staff.id, created_by=None, now=now)
    code_id = session.exec(
        select(LinkCode.id).where(LinkCode.staff_id == staff.id).order_by(LinkCode.id.desc())
    ).first()
    audit.record(
        session,
        actor_id=None,
        action=FOR_EMAIL,
        entity="link_code",
        entity_id=code_id,
        before=None,
        after={"staff_id": staff.id},
        now=now,
    )
    to, name, staff_lang, staff_id = staff.email, staff.full_name, staff.language or lang, staff.id
    bind = session.get_bind()
    db = getattr(bind, "engine", bind)  # the step's connection is closed by then: its engine is not

    async def send() -> list[Outgoing]:
        import logging

        try:
            await mailer(to, EMAIL_SUBJECT(staff_lang), EMAIL_BODY(staff_lang, name=name, code=code))
        except Exception as exc:  # SMTP down: the person can retry or ask for a code
            logging.getLogger(__name__).warning("link code email to staff %s failed: %s", staff_id, exc)
            return [Outgoing(text=EMAIL_FAILED(lang))]
        try:  # only a code the mail server took counts as "just e-mailed"
            with Session(db) as fresh:
                audit.record(
                    fresh,
                    actor_id=None,
                    action=EMAILED,
                    entity="link_code",
                    entity_id=code_id,
                    before=None,
                    after={"staff_id": staff_id},
                    now=now,
                )
                fresh.commit()
        except Exception:
            logging.getLogger(__name__).exception("could not record the e-mailed link code of staff %s", staff_id)
        return [Outgoing(text=CODE_EMAILED(lang, email=esc(masked)))]

    return LinkStep(after_commit=[send])


def _by_code(
    session: Session, incoming: Incoming, code: str, *, programme: Programme, now: datetime, lang: str
) -> LinkStep:
    attempt = _attempt(session, incoming.channel, incoming.user_id, now)
    if attempt.staff_id is None:
        session.flush()
        return LinkStep([Outgoing(text=PHONE_FIRST(lang))])
    staff = session.get(Staff, attempt.staff_id)
    if staff is None or not staff.active:
        return LinkStep([refusal_for(session, programme, staff, lang)] if staff else [])
    if redeem_link_code(session, staff_id=staff.id, code=code, now=now):
        session.delete(attempt)
        people.link_identity(
            session,
            staff_id=staff.id,
            channel=incoming.channel,
            external_id=incoming.user_id,
            chat_id=incoming.chat_id,
            now=now,
        )
        return LinkStep([Outgoing(text=LINKED(lang), remove_keyboard=True)], linked=staff)
    attempt.failures += 1
    attempt.updated_at = now
    if attempt.failures >= MAX_FAILURES:
        attempt.failures = 0
        attempt.locked_until = now + LOCK_FOR
        session.add(attempt)
        session.flush()
        audit.record(
            session,
            actor_id=None,
            action="link_locked",
            entity="link_attempt",
            entity_id=attempt.id,
            before=None,
            after={"channel": incoming.channel, "staff_id": staff.id},
            now=now,
        )
        return LinkStep(
            [Outgoing(text=LOCKED(lang, n=MAX_FAILURES, until=fmt_local(attempt.locked_until, programme.tz)))]
        )
    session.add(attempt)
    session.flush()
    return LinkStep([Outgoing(text=WRONG_CODE(lang, left=MAX_FAILURES - attempt.failures))])


def relink_by_contact(
    session: Session, incoming: Incoming, person: Person, *, programme: Programme, now: datetime, lang: str
) -> LinkStep:
    """A linked person shares a contact: their own phone -> nothing to do; another active roster phone that
    Telegram vouches belongs to this account -> the account moves to that person (audited)."""
    contact = incoming.contact
    assert contact is not None
    if contact.user_id is None or contact.user_id != incoming.user_id:
        return LinkStep([Outgoing(text=NOT_OWN_CONTACT(lang))])
    staff = people.find_staff_by_phone(session, phone=contact.phone)
    if staff is None:
        return LinkStep([_unknown_phone(session, programme, contact.phone, lang)])
    if staff.id == person.id:
        return LinkStep([Outgoing(text=ALREADY_LINKED(lang), remove_keyboard=True)])
    if not staff.active:
        return LinkStep([refusal_for(session, programme, staff, lang)])
    people.link_identity(
        session,
        staff_id=staff.id,
        channel=incoming.channel,
        external_id=incoming.user_id,
        chat_id=incoming.chat_id,
        now=now,
    )
    return LinkStep([Outgoing(text=LINKED(lang), remove_keyboard=True)], linked=staff)


# --- /taoma (formerly /maketoken): a principal or the district officer makes a code for a colleague ---------
# A principal makes codes for the staff of their school; a district officer for anyone in the district
# (in practice the principals, who then make their teachers' codes).

MAKETOKEN_ASK = T(vi="Số điện thoại của người cần mã liên kết?", en="Phone number of the person who needs a code?")
NOT_YOURS = T(
    vi="Số {phone} không thuộc {where} của bạn, nên bạn không tạo mã cho người này được.",
    en="{phone} is not in your {where}, so you cannot make a code for them.",
)
NOT_ON_ROSTER = T(vi="Số {phone} không có trong danh sách đang hoạt động.", en="{phone} is not on the active roster.")
TOKEN_MADE = T(
    vi="Mã liên kết cho <b>{name}</b>: <code>{code}</code>\nMã dùng một lần, hết hạn lúc {until}. Người đó gõ "
    "số điện thoại của mình cho bot, rồi gõ mã này.",
    en="Link code for <b>{name}</b>: <code>{code}</code>\nSingle use, expires at {until}. They type their "
    "phone number to the bot, then this code.",
)


def _make_token(ctx: FormContext) -> Done:
    phone = ctx.values["phone"]
    staff = ctx.session.exec(select(Staff).where(Staff.phone == phone)).first()
    shown = display_phone(phone)
    if staff is None or not staff.active:
        raise Invalid(NOT_ON_ROSTER, field="phone", phone=shown)
    me = ctx.staff
    if me.role == Role.DISTRICT_OFFICER:
        allowed, where = staff.district_id == me.district_id, T(vi="quận/huyện", en="district")
    else:
        allowed, where = staff.school_id is not None and staff.school_id == me.school_id, T(vi="trường", en="school")
    if not allowed:
        raise Invalid(NOT_YOURS, field="phone", phone=shown, where=where(ctx.lang))
    code = issue_link_code(ctx.session, staff_id=staff.id, created_by=me.id, now=ctx.now)
    audit.record(
        ctx.session,
        actor_id=me.id,
        action="make_link_code",
        entity="staff",
        entity_id=staff.id,
        before=None,
        after={"phone": mask_phone(phone)},
        now=ctx.now,
    )
    return Done(TOKEN_MADE, name=esc(staff.full_name), code=code, until=fmt_local(ctx.now + CODE_TTL, ctx.programme.tz))


MAKETOKEN = Form(
    name="maketoken",  # the stored form name stays (conversations in progress keep working)
    command="taoma",
    aliases=("maketoken",),
    title=T(vi="Tạo mã liên kết", en="Make a link code"),
    description=T(
        vi="Tạo mã liên kết cho đồng nghiệp chưa liên kết được tài khoản",
        en="Make a link code for a colleague who cannot link their account",
    ),
    roles=frozenset({Role.PRINCIPAL, Role.DISTRICT_OFFICER}),
    fields=[phone_field("phone", MAKETOKEN_ASK, T(vi="Số điện thoại", en="Phone"))],
    on_complete=_make_token,
    summary=False,
    args_field="phone",
)

FORMS = [MAKETOKEN]
