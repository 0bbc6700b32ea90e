"""The conversation engine: one ``Incoming`` in, the ``Outgoing`` messages to send out.
(Over 500 lines on purpose: the whole life of one message — dedupe, who, command or answer, commit,
messages for others — reads top to bottom here; forms, state and linking live in their own modules.)

Per message, in one short transaction (``conversations/state.py`` has the Core fast path):

1. flood control (in memory, before the database is touched);
2. dedupe: (channel, message id) is recorded in ``processed_message`` — a redelivered update returns [];
3. who: the chat account's linked person and their form in progress, in one indexed join (unknown account
   -> linking only; deactivated person -> a polite refusal naming the district contact);
4. the step: a global command (/huy, /menu, /start, /trogiup), a form or action command, or an answer to
   the current question (``conversations/runner.py``);
5. the progress row is upserted (or deleted when the form ends, in the same transaction as the form's
   record), and messages for other people are recorded in the outbox in that same transaction; the
   scheduler's deliverer sends them (woken at once through ``on_queued``).

``handle`` never raises for anything a person sends: a bug in a form is logged with its traceback, the
transaction is rolled back (so the person's progress is exactly as before) and an apology is returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import event
from sqlmodel import Session, select

from conversations import linking
from conversations.flood import FloodGate, Verdict
from conversations.forms import registry
from conversations.forms.base import Action, Done, Form, FormContext, Kind, Person
from conversations.menu import help_message, menu_message
from conversations.runner import EDIT, FILL, Outcome, Progress, Runner
from conversations.state import (
    DEFAULT_LOCK_TIMEOUT_MS,
    ConnectionLost,
    ConvRow,
    PersonBusy,
    Sender,
    claim_and_load,
    commit_step,
    load_sender,
    prune_processed,
)
from core.clock import Clock
from core.i18n import LANGUAGES, T
from core.messages import Incoming, Outgoing, esc
from core.phones import mask_phone, normalize_phone
from core.ports import Mailer
from core.programme import Programme
from core.text import is_word
from core.vocabulary import role_label
from storage import outbox, people
from storage.models import Staff

if TYPE_CHECKING:
    from storage.photos import PhotoStore

log = logging.getLogger(__name__)


DEDUPE_KEEP = timedelta(days=3)
PRUNE_EVERY = 1000  # messages between opportunistic prunes of the dedupe table
MAX_CHAIN = 5  # forms started one after another by Done(next_form=...) within one message
MAX_PHOTO_BYTES = 20 * 1024 * 1024

APOLOGY = T(
    vi="Xin lỗi, hệ thống gặp lỗi khi xử lý tin nhắn này. Thông tin bạn đã nhập trước đó vẫn được giữ; "
    "vui lòng gửi lại câu trả lời hoặc thử lại sau ít phút.",
    en="Sorry, something went wrong with this message. What you entered before is kept; please send your "
    "answer again or try again in a few minutes.",
)
SLOW_DOWN = T(
    vi="Bạn gửi nhanh quá, vui lòng chờ khoảng {s} giây rồi gửi tiếp.",
    en="You are sending too fast; please wait about {s} seconds.",
)
CANCELLED = T(
    vi="Đã hủy «{title}». Không có gì được lưu. Gõ /menu để làm việc khác.",
    en="Cancelled “{title}”. Nothing was saved. Type /menu for something else.",
)
NOTHING_TO_CANCEL = T(vi="Không có việc nào đang làm dở.", en="Nothing to cancel.")
BUSY = T(
    vi="Bạn đang điền «{title}». Hãy trả lời câu hỏi dưới đây, hoặc gõ /huy để hủy rồi chọn {cmd}.",
    en="You are filling in “{title}”. Answer the question below, or type /huy to cancel and then {cmd}.",
)
BUSY_ELSEWHERE = T(
    vi="Bạn đang điền «{title}» trên {channel}. Hãy tiếp tục ở đó, hoặc gõ /huy để hủy.",
    en="You are filling in “{title}” on {channel}. Continue there, or type /huy to cancel.",
)
IN_PROGRESS = T(vi="(Bạn đang điền «{title}».)", en="(You are filling in “{title}”.)")
UNKNOWN_COMMAND = T(
    vi="Không có lệnh /{cmd}. Gõ /menu để xem các việc bạn có thể làm.",
    en="There is no command /{cmd}. Type /menu to see what you can do.",
)
NOT_FOR_ROLE = T(
    vi="Lệnh /{cmd} không dành cho {role}. Gõ /menu để xem các việc bạn có thể làm.",
    en="/{cmd} is not available to a {role}. Type /menu to see what you can do.",
)
UNSUPPORTED = T(
    vi="Bot chưa đọc được loại tin nhắn này (nhãn dán, ghi âm, tệp...). Vui lòng gửi chữ hoặc ảnh.",
    en="The bot cannot read this kind of message (sticker, voice, file...). Please send text or a photo.",
)
STALE_MENU = T(vi="Lựa chọn này đã hết hạn (nút của một tin nhắn cũ).", en="That choice has expired (an old button).")
NO_PHOTO_WANTED = T(
    vi="Hiện bạn không điền mục nào cần ảnh. Ảnh bàn giao được gửi trong lệnh /bangiao; ảnh biên bản đã ký "
    "gửi thẳng vào đây (bot đọc mã QR trên tờ biên bản) hoặc qua /bienban.",
    en="No open form needs a photo right now. Handover photos go with /bangiao; a photo of signed minutes can be "
    "sent straight here (the bot reads the sheet's QR code) or with /bienban.",
)
PHOTO_TOO_BIG = T(
    vi="Ảnh quá lớn (tối đa 20 MB). Vui lòng gửi ảnh nhỏ hơn.",
    en="The photo is too large (20 MB at most). Please send a smaller one.",
)
PHOTO_FETCH_FAILED = T(
    vi="Không tải được ảnh từ ứng dụng chat. Vui lòng gửi lại ảnh.",
    en="The photo could not be downloaded. Please send it again.",
)
STEP_BUSY = T(
    vi="Tin nhắn trước của bạn vẫn đang được xử lý nên tin nhắn này chưa được ghi nhận. "
    "Vui lòng chờ vài giây rồi gửi lại.",
    en="Your previous message is still being processed, so this one was not recorded. "
    "Please wait a few seconds and send it again.",
)
LATE_MESSAGE = T(
    vi="Tin nhắn «{text}» đến chậm, sau một tin nhắn bạn gửi sau nó, nên không được dùng "
    "(để không ghi đè câu trả lời mới hơn). Nếu vẫn cần, hãy gửi lại.",
    en="Your message “{text}” arrived late, after a message you sent later, so it was not used (so as not to "
    "overwrite a newer answer). Send it again if you still need it.",
)
NO_DOCUMENT_WANTED = T(
    vi="Hiện bạn không điền mục nào cần tệp. Danh sách học sinh (Excel) được nhập bằng lệnh /nhapds.",
    en="No open form needs a file right now. Class lists (Excel) are imported with /nhapds.",
)
DOCUMENT_TOO_BIG = T(
    vi="Tệp quá lớn ({size}; tối đa {max}). Hãy chia danh sách thành nhiều tệp nhỏ hơn.",
    en="The file is too large ({size}; at most {max}). Please split the list into smaller files.",
)
DOCUMENT_FETCH_FAILED = T(
    vi="Không tải được tệp từ ứng dụng chat. Vui lòng gửi lại tệp.",
    en="The file could not be downloaded. Please send it again.",
)
FORM_GONE = T(
    vi="Biểu mẫu bạn đang điền không còn nữa (hệ thống vừa cập nhật). Gõ /menu để bắt đầu lại.",
    en="The form you were filling in no longer exists (the system was updated). Type /menu to start again.",
)
CHANNEL_NAMES = {"telegram": "Telegram", "zalo": "Zalo", "console": "cửa sổ dòng lệnh"}
CANCEL_WORDS = ("hủy", "huỷ", "huy", "cancel")
HELP_COMMANDS = ("trogiup", "help")


class _Step:
    """Everything one message's processing accumulates: its connection and transaction, an ORM session made
    only if a form needs one, rollback hooks, notifications, slow work for after the commit."""

    def __init__(
        self, engine: ConversationEngine, conn: sqlalchemy.Connection, incoming: Incoming, now: datetime
    ) -> None:
        self.engine = engine
        self.conn = conn
        self.incoming = incoming
        self.now = now
        self._session: Session | None = None
        self.pending_save: dict[str, Any] | None = None
        self.pending_delete: int | None = None  # the staff id whose finished form's progress goes at commit
        self.durable = False  # the step wrote a record: its commit waits for the disk
        self.rollback_hooks: list[Callable[[], None]] = []
        self.contexts: list[FormContext] = []
        self.after_commit: list[Callable[[], Awaitable[list[Outgoing]]]] = []
        self.queued = 0  # messages for other people recorded in the outbox by this step
        # For the one log line per message: who, which form, which step.
        self.staff_id: int | None = None
        self.form = "-"
        self.step_name = "-"

    @property
    def session(self) -> Session:
        """An ORM session on the step's own connection and transaction: flushes land in the same commit as
        the dedupe record and the form state (it never commits or closes that transaction itself)."""
        if self._session is None:
            # Progress-only steps commit without waiting for the disk on PostgreSQL (a crash can lose at most
            # the last answer). Forms open the session to check answers too (a student code already taken),
            # so opening it is not writing: what the connection runs from now on decides.
            event.listen(self.conn, "before_cursor_execute", self._note_statement)
            self._session = Session(bind=self.conn, expire_on_commit=False)
        return self._session

    def _note_statement(self, _conn, _cursor, statement: str, *_rest) -> None:
        """Anything but a SELECT (an INSERT, UPDATE, DELETE, a savepoint around one) makes the commit
        durable: a record, its audit line or an outbox row must survive a crash once the person was told."""
        if not self.durable and statement.lstrip()[:6].upper() != "SELECT":
            self.durable = True

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def delete_progress(self, staff_id: int) -> None:
        """The form ended: its progress row goes with the commit (nothing in the step reads it back)."""
        self.pending_save, self.pending_delete = None, staff_id

    def commit(self, trans: sqlalchemy.RootTransaction) -> None:
        """The form's progress (saved or deleted), the durable setting when a record was written, then
        COMMIT: sent together on PostgreSQL (``commit_step``)."""
        save, self.pending_save = self.pending_save, None
        commit_step(
            self.conn,
            save=save,
            delete_staff_id=self.pending_delete if save is None else None,
            durable=self.durable,
        )
        trans.commit()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def ctx(self, person: Person, lang: str, values: dict[str, Any]) -> FormContext:
        e = self.engine
        ctx = FormContext(
            session_factory=lambda: self.session,
            staff=person,
            programme=e.programme,
            clock=e.clock,
            now=self.now,
            lang=lang,
            values=values,
            photos=e.photos,
            media_dir=e.media_dir,
            channel=self.incoming.channel,
            web_url=e.web_url,
        )
        ctx.rollback_hooks = self.rollback_hooks
        self.contexts.append(ctx)
        return ctx


# Tries of a step whose pooled connection turns out dead at its first statement. Usually the pool's check
# on checkout finds the others dead at once; more than one try covers a pool of silently dead connections.
STEP_ATTEMPTS = 3


class ConversationEngine:
    def __init__(
        self,
        *,
        db: sqlalchemy.Engine,
        programme: Programme,
        clock: Clock,
        photos: PhotoStore | None = None,
        media_dir: Path | None = None,
        mailer: Mailer | None = None,
        flood_limit_per_minute: int = 30,
        default_language: str = "vi",
        on_queued: Callable[[], None] | None = None,
        web_url: str | None = None,
        lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    ) -> None:
        self.db = db
        self.web_url = web_url
        # Called after a step that queued messages for other people has committed: wakes the deliverer, so
        # "your registration was approved" goes out at once instead of at the next delivery tick.
        self.on_queued = on_queued
        self.programme = programme
        self.clock = clock
        self.photos = photos
        self.media_dir = media_dir
        self.mailer = mailer
        self.default_language = default_language if default_language in LANGUAGES else "vi"
        self.flood = FloodGate(limit_per_minute=flood_limit_per_minute)
        self.lock_timeout_ms = lock_timeout_ms
        self._since_prune = PRUNE_EVERY  # prune on the first message of a process, then every N
        registry()  # import every form now: a broken form module fails at start-up, not on a teacher's tap

    # --- public ------------------------------------------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> list[Outgoing]:
        started = time.perf_counter()
        now = self.clock.now()
        verdict = self.flood.check(incoming.channel, incoming.user_id, now)
        if verdict is Verdict.DROP:
            return []
        if verdict is Verdict.WARN:
            wait = self.flood.wait_seconds(incoming.channel, incoming.user_id, now)
            return [Outgoing(text=SLOW_DOWN(self.default_language, s=wait))]
        try:
            photo: bytes | None = None
            if incoming.photo is not None:
                photo_or_error = await self._fetch_photo_if_wanted(incoming)
                if isinstance(photo_or_error, Outgoing):
                    return [photo_or_error]
                photo = photo_or_error
            document: bytes | None = None
            if incoming.document is not None:
                doc_or_error = await self._fetch_document_if_wanted(incoming)
                if isinstance(doc_or_error, Outgoing):
                    return [doc_or_error]
                document = doc_or_error
            replies, step = self._step(incoming, photo, now, document)
            if step is None:
                log.info("update skipped (redelivered) channel=%s", incoming.channel)
                return replies
            if step.queued and self.on_queued is not None:
                self.on_queued()
            for work in step.after_commit:
                replies.extend(await work())
            log.info(
                "update handled channel=%s staff=%s form=%s step=%s replies=%d ms=%.1f",
                incoming.channel,
                step.staff_id if step.staff_id is not None else "unlinked",
                step.form,
                step.step_name,
                len(replies),
                (time.perf_counter() - started) * 1000,
            )
            return replies
        except PersonBusy:
            # Nothing of this message was stored (not even its dedupe record): sending it again works.
            log.warning("step lock not had in %d ms channel=%s", self.lock_timeout_ms, incoming.channel)
            return [Outgoing(text=STEP_BUSY(self.default_language))]
        except Exception:
            log.exception("conversation step failed channel=%s", incoming.channel)
            return [Outgoing(text=APOLOGY(self.default_language))]

    def link_directly(self, *, channel: str, external_id: str, chat_id: str, phone: str) -> Staff:
        """Console channel: the operator picked the roster person, so no code is needed."""
        try:
            e164 = normalize_phone(phone)
        except ValueError as exc:
            raise LookupError(f"Số điện thoại không hợp lệ: {exc}") from None
        now = self.clock.now()
        with Session(self.db, expire_on_commit=False) as session:
            staff = session.exec(select(Staff).where(Staff.phone == e164)).first()
            if staff is None:
                raise LookupError(
                    f"Số {mask_phone(e164)} không có trong danh sách. Nhập danh sách bằng: fieldbot roster import TỆP"
                )
            if not staff.active:
                raise LookupError(f"{staff.full_name} đã ngừng hoạt động trong danh sách.")
            people.link_identity(
                session, staff_id=staff.id, channel=channel, external_id=external_id, chat_id=chat_id, now=now
            )
            session.commit()
            session.expunge(staff)
            return staff

    # --- the step --------------------------------------------------------------------------------------------

    async def _fetch_photo_if_wanted(self, incoming: Incoming) -> bytes | Outgoing | None:
        """Download a photo only when the person's current question asks for one (read-only peek)."""
        with self.db.connect() as conn:
            sender = load_sender(conn, channel=incoming.channel, external_id=incoming.user_id)
        if sender is None or not sender.active:
            return None
        if not self._wants_photo(sender, incoming.channel) and not (
            sender.conversation is None and self._photo_forms(sender.person)
        ):
            return None
        lang = self._lang(sender.person)
        assert incoming.photo is not None
        if incoming.photo.size is not None and incoming.photo.size > MAX_PHOTO_BYTES:
            return Outgoing(text=PHOTO_TOO_BIG(lang))
        try:
            data = await incoming.photo.fetch()
        except Exception as exc:
            log.warning("photo download failed channel=%s: %s", incoming.channel, exc)
            return Outgoing(text=PHOTO_FETCH_FAILED(lang))
        if len(data) > MAX_PHOTO_BYTES:
            return Outgoing(text=PHOTO_TOO_BIG(lang))
        return data

    def _wants_photo(self, sender: Sender, channel: str) -> bool:
        conv = sender.conversation
        if conv is None or conv.channel != channel:
            return False
        form = registry().forms.get(conv.form)
        if form is None or conv.data.get("m", FILL) not in (FILL, EDIT):
            return False
        f = form.field(conv.step)
        return f is not None and f.kind == Kind.PHOTO

    async def _fetch_document_if_wanted(self, incoming: Incoming) -> bytes | Outgoing | None:
        """Download a file only when the person's current question asks for one, or when they have no form in
        progress and may start the form that takes files (a class list sent straight away)."""
        with self.db.connect() as conn:
            sender = load_sender(conn, channel=incoming.channel, external_id=incoming.user_id)
        if sender is None or not sender.active:
            return None
        conv = sender.conversation
        if conv is not None:
            if conv.channel != incoming.channel:
                return None
            form = registry().forms.get(conv.form)
            f = form.field(conv.step) if form is not None and conv.data.get("m", FILL) in (FILL, EDIT) else None
            if f is None or f.kind != Kind.DOCUMENT:
                return None
        elif self._document_form(sender.person) is None:
            return None
        lang = self._lang(sender.person)
        assert incoming.document is not None
        limit = self.programme.imports.max_bytes
        if incoming.document.size is not None and incoming.document.size > limit:
            return Outgoing(text=DOCUMENT_TOO_BIG(lang, size=_size(incoming.document.size), max=_size(limit)))
        try:
            data = await incoming.document.fetch()
        except Exception as exc:
            log.warning("document download failed channel=%s: %s", incoming.channel, exc)
            return Outgoing(text=DOCUMENT_FETCH_FAILED(lang))
        if len(data) > limit:
            return Outgoing(text=DOCUMENT_TOO_BIG(lang, size=_size(len(data)), max=_size(limit)))
        return data

    @staticmethod
    def _photo_forms(person: Person) -> list[Form]:
        """Forms that may recognise a photo sent outside any form (``Form.photo_start``)."""
        return [f for f in registry().forms.values() if f.photo_start is not None and person.role in f.roles]

    def _start_from_photo(self, step: _Step, person: Person, lang: str, photo: bytes) -> list[Outgoing] | None:
        """A photo with no form open: the first form that recognises it starts with the answers it implies
        (the stored photo among them). None when no form knows the photo."""
        assert step.incoming.photo is not None
        for form in self._photo_forms(person):
            ctx = step.ctx(person, lang, {})
            values = form.photo_start(ctx, photo, step.incoming.photo)
            if values is not None:
                return self._start(step, person, lang, form, values=values, pick=False, chain=0)
        return None

    @staticmethod
    def _document_form(person: Person) -> Form | None:
        return next((f for f in registry().forms.values() if f.takes_documents and person.role in f.roles), None)

    def _step(self, incoming: Incoming, photo: bytes | None, now: datetime, document: bytes | None = None):
        for attempt in range(1, STEP_ATTEMPTS + 1):
            try:
                return self._step_once(incoming, photo, now, document)
            except ConnectionLost as exc:
                # A pooled connection the server ended since its last use (a restart, an idle timeout):
                # nothing of the step ran and that connection is dropped, so start again on another one.
                if attempt == STEP_ATTEMPTS:
                    raise
                log.warning("database connection lost before the step (%s): trying again", exc)
        raise AssertionError("unreachable")

    def _step_once(self, incoming: Incoming, photo: bytes | None, now: datetime, document: bytes | None = None):
        with self.db.connect() as conn:
            step = _Step(self, conn, incoming, now)
            trans = conn.begin()
            try:
                fresh, sender = claim_and_load(
                    conn,
                    channel=incoming.channel,
                    message_id=incoming.message_id,
                    external_id=incoming.user_id,
                    now=now,
                    seq=incoming.seq,
                    lock_timeout_ms=self.lock_timeout_ms,
                )
                if not fresh:
                    trans.rollback()
                    return [], None
                self._maybe_prune(step)
                if sender is not None:
                    step.staff_id = sender.person.id
                    if sender.conversation is not None:
                        step.form, step.step_name = sender.conversation.form, sender.conversation.step
                if sender is None:
                    replies = self._unknown(step)
                elif not sender.active:
                    replies = [
                        linking.refusal_for(step.session, self.programme, sender.person, self._lang(sender.person))
                    ]
                elif _late(incoming, sender):
                    replies = self._late(step, sender)
                else:
                    replies = self._linked(step, sender, photo, document)
                self._queue_notifications(step)
                step.flush()
                step.commit(trans)
            except BaseException:
                trans.rollback()
                for hook in step.rollback_hooks:
                    try:
                        hook()
                    except Exception:
                        log.exception("rollback hook failed")
                raise
            finally:
                step.close()
        return replies, step

    def _maybe_prune(self, step: _Step) -> None:
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            removed = prune_processed(step.conn, before=step.now - DEDUPE_KEEP)
            if removed:
                log.info("pruned %d processed-message records", removed)

    def _lang(self, person: Person | None) -> str:
        if person is not None and person.language in LANGUAGES:
            return person.language
        return self.default_language

    def _late(self, step: _Step, sender: Sender) -> list[Outgoing]:
        """An older message that arrived after a newer one was applied: say so, apply nothing, and ask the
        current question again so the person sees where they are."""
        lang = self._lang(sender.person)
        incoming = step.incoming
        shown = (incoming.text or incoming.choice or "").strip()[:40] or "…"
        log.info("late message refused channel=%s staff=%s", incoming.channel, sender.person.id)
        conv = sender.conversation
        here = conv if conv is not None and conv.channel == incoming.channel else None
        return [Outgoing(text=LATE_MESSAGE(lang, text=esc(shown)))] + self._reask(step, sender.person, lang, here)

    # --- unknown accounts ---------------------------------------------------------------------------------------

    def _unknown(self, step: _Step) -> list[Outgoing]:
        result = linking.handle_unknown(
            step.session,
            step.incoming,
            programme=self.programme,
            now=step.now,
            mailer=self.mailer,
            lang=self.default_language,
        )
        step.after_commit.extend(result.after_commit)
        replies = list(result.messages)
        if result.linked is not None:
            person = _person(result.linked)
            replies.append(menu_message(person, self._lang(person), greeting=True))
            log.info("account linked channel=%s staff=%s", step.incoming.channel, result.linked.id)
        return replies

    # --- linked people ------------------------------------------------------------------------------------------

    def _linked(
        self, step: _Step, sender: Sender, photo: bytes | None, document: bytes | None = None
    ) -> list[Outgoing]:
        incoming, person = step.incoming, sender.person
        lang = self._lang(person)
        conv = sender.conversation
        here = conv if conv is not None and conv.channel == incoming.channel else None
        text = (incoming.text or "").strip()
        cmd, args = incoming.command, incoming.command_args
        if incoming.choice is not None and incoming.choice.startswith("/"):
            cmd, args = incoming.choice[1:].split(" ", 1)[0].lower(), ""  # a menu button

        if incoming.contact is not None:
            result = linking.relink_by_contact(
                step.session, incoming, person, programme=self.programme, now=step.now, lang=lang
            )
            replies = list(result.messages)
            if result.linked is not None and result.linked.id != person.id:
                replies.append(menu_message(_person(result.linked), self._lang(_person(result.linked)), greeting=True))
            return replies
        if incoming.unsupported:
            return [Outgoing(text=UNSUPPORTED(lang))] + self._reask(step, person, lang, here)
        if cmd in ("huy", "cancel") or (cmd is None and incoming.choice is None and is_word(text, *CANCEL_WORDS)):
            return self._cancel(step, person, lang, conv)
        if cmd in ("start", "menu"):
            note = self._busy_note(conv, lang)
            # Mid-form: the menu as text only, so the re-asked question's options are the only numbered ones.
            menu = menu_message(person, lang, greeting=cmd == "start", note=note, buttons=here is None)
            return [menu] + self._reask(step, person, lang, here)
        if cmd in HELP_COMMANDS:
            name, phone = linking.contact_of(step.session, self.programme, person.district_id)
            return [help_message(person, lang, contact=f"{name} ({phone})")] + self._reask(step, person, lang, here)
        if cmd is not None:
            return self._command(step, person, lang, conv, here, cmd, args)
        if here is not None:
            return self._answer(step, person, lang, here, photo, document)
        if incoming.document is not None and conv is None:
            form = self._document_form(person)
            if form is None or document is None:
                return [menu_message(person, lang, note=NO_DOCUMENT_WANTED(lang))]
            return self._start(step, person, lang, form, values=None, pick=False, chain=0, document=document)
        if conv is not None:
            return [
                Outgoing(
                    text=BUSY_ELSEWHERE(
                        lang, title=self._title(conv.form, lang), channel=CHANNEL_NAMES.get(conv.channel, conv.channel)
                    )
                )
            ]
        if incoming.choice is not None:
            return [menu_message(person, lang, note=STALE_MENU(lang))]
        if incoming.photo is not None:
            started = self._start_from_photo(step, person, lang, photo) if photo is not None else None
            if started is not None:
                return started
            return [menu_message(person, lang, note=NO_PHOTO_WANTED(lang))]
        return [menu_message(person, lang, greeting=True)]

    def _command(
        self, step: _Step, person: Person, lang: str, conv: ConvRow | None, here: ConvRow | None, cmd: str, args: str
    ) -> list[Outgoing]:
        item = registry().commands.get(cmd)
        if item is None:
            return [Outgoing(text=UNKNOWN_COMMAND(lang, cmd=esc(cmd[:32])))] + self._reask(step, person, lang, here)
        if person.role not in item.roles:
            return [Outgoing(text=NOT_FOR_ROLE(lang, cmd=cmd, role=role_label(person.role, lang)))] + self._reask(
                step, person, lang, here
            )
        if conv is not None:
            if here is None:
                return [
                    Outgoing(
                        text=BUSY_ELSEWHERE(
                            lang,
                            title=self._title(conv.form, lang),
                            channel=CHANNEL_NAMES.get(conv.channel, conv.channel),
                        )
                    )
                ]
            note = BUSY(lang, title=self._title(conv.form, lang), cmd=f"/{cmd}")
            return self._reask(step, person, lang, here, note=note)
        if isinstance(item, Action):
            ctx = step.ctx(person, lang, {})
            done = item.run(ctx)
            return self._after_done(step, person, lang, done, [], chain=0)
        return self._start(step, person, lang, item, values=None, pick=False, args=args, chain=0)

    def _start(
        self,
        step: _Step,
        person: Person,
        lang: str,
        form: Form,
        *,
        values: dict[str, Any] | None,
        pick: bool,
        args: str = "",
        chain: int,
        document: bytes | None = None,
    ) -> list[Outgoing]:
        progress = Progress(form=form.name, values=dict(values or {}))
        ctx = step.ctx(person, lang, progress.values)
        if form.start is not None:
            done = form.start(ctx)
            if done is not None:
                return self._after_done(step, person, lang, done, [], chain=chain)
        runner = Runner(form, ctx, progress)
        replies: list[Outgoing] = []
        if form.intro is not None:
            replies.append(Outgoing(text=form.intro(lang)))
        outcome = runner.begin(pick=pick)
        if args and form.args_field and outcome.done is None and progress.step == form.args_field:
            outcome = runner.answer(_typed(step.incoming, args))
        if document is not None and outcome.done is None:
            f = form.field(progress.step)
            if f is not None and f.kind == Kind.DOCUMENT:
                replies = []  # the file answers the first question: no need to ask for it
                outcome = runner.answer(step.incoming, document=document)
        return self._conclude(step, person, lang, runner, outcome, replies, chain=chain)

    def _answer(
        self, step: _Step, person: Person, lang: str, conv: ConvRow, photo: bytes | None, document: bytes | None = None
    ) -> list[Outgoing]:
        runner = self._runner(step, person, lang, conv)
        if runner is None:
            step.delete_progress(person.id)
            return [Outgoing(text=FORM_GONE(lang))]
        outcome = runner.answer(step.incoming, photo, document)
        return self._conclude(step, person, lang, runner, outcome, [], chain=0)

    def _conclude(
        self,
        step: _Step,
        person: Person,
        lang: str,
        runner: Runner,
        outcome: Outcome,
        replies: list[Outgoing],
        *,
        chain: int,
    ) -> list[Outgoing]:
        replies = replies + outcome.messages
        step.form, step.step_name = runner.form.name, "done" if outcome.done or outcome.cancelled else runner.p.step
        if outcome.cancelled:
            step.delete_progress(person.id)
            return replies + [Outgoing(text=CANCELLED(lang, title=runner.form.title(lang)))]
        if outcome.done is not None:
            step.delete_progress(person.id)
            return self._after_done(step, person, lang, outcome.done, replies, chain=chain, messages_sent=True)
        # Written with the commit (one round trip on PostgreSQL): nothing in this step reads it back.
        step.pending_save = dict(
            staff_id=person.id,
            channel=step.incoming.channel,
            chat_id=step.incoming.chat_id,
            form=runner.form.name,
            step=runner.p.step,
            data=runner.p.dump(),
            now=step.now,
        )
        return replies

    def _after_done(
        self,
        step: _Step,
        person: Person,
        lang: str,
        done: Done,
        replies: list[Outgoing],
        *,
        chain: int,
        messages_sent: bool = False,
    ) -> list[Outgoing]:
        if not messages_sent:
            text = done.text(lang)
            if text:
                replies = replies + [Outgoing(text=text)]
            replies = replies + list(done.messages)
        if done.next_form is None:
            return replies
        nxt = registry().forms.get(done.next_form)
        if nxt is None or chain >= MAX_CHAIN:
            log.error("form chain stopped at %r (chain %d)", done.next_form, chain)
            return replies
        return replies + self._start(
            step, person, lang, nxt, values=done.next_values, pick=done.next_pick, chain=chain + 1
        )

    def _runner(self, step: _Step, person: Person, lang: str, conv: ConvRow) -> Runner | None:
        form = registry().forms.get(conv.form)
        if form is None:
            return None
        progress = Progress.load(conv.form, conv.step, conv.data)
        return Runner(form, step.ctx(person, lang, progress.values), progress)

    def _reask(
        self, step: _Step, person: Person, lang: str, here: ConvRow | None, note: str | None = None
    ) -> list[Outgoing]:
        """Ask the current question again (after /menu, /trogiup, a refused command ...)."""
        if here is None:
            return [Outgoing(text=note)] if note else []
        runner = self._runner(step, person, lang, here)
        if runner is None:
            return [Outgoing(text=note)] if note else []
        return [runner.reask(note=note)]

    def _cancel(self, step: _Step, person: Person, lang: str, conv: ConvRow | None) -> list[Outgoing]:
        if conv is None:
            return [Outgoing(text=NOTHING_TO_CANCEL(lang), remove_keyboard=True)]
        step.delete_progress(person.id)
        return [Outgoing(text=CANCELLED(lang, title=self._title(conv.form, lang)), remove_keyboard=True)]

    def _busy_note(self, conv: ConvRow | None, lang: str) -> str | None:
        return IN_PROGRESS(lang, title=self._title(conv.form, lang)) if conv is not None else None

    def _title(self, form_name: str, lang: str) -> str:
        form = registry().forms.get(form_name)
        return form.title(lang) if form is not None else form_name

    # --- notifications to other people ---------------------------------------------------------------------------

    def _queue_notifications(self, step: _Step) -> None:
        """Messages this step sends other people: outbox rows in the step's own transaction (committed with
        it or not at all), worded in each recipient's language; delivered by the scheduler's deliverer."""
        n = 0
        for ctx in step.contexts:
            for staff_id, message, values in ctx.notifications:
                staff = step.session.get(Staff, staff_id)
                if staff is None or not staff.active:
                    log.info("notification skipped: staff %s is not in the roster", staff_id)
                    continue
                lang = staff.language if staff.language in LANGUAGES else self.default_language
                text = message(lang, **values) if isinstance(message, T) else message
                n += 1
                origin = f"{step.incoming.channel}:{step.incoming.message_id or id(step)}:{step.now.isoformat()}:{n}"
                outbox.queue_notice(step.session, recipient_id=staff_id, text=text, now=step.now, origin=origin)
        step.queued += n


def _late(incoming: Incoming, sender: Sender) -> bool:
    return incoming.seq is not None and sender.last_seq is not None and incoming.seq < sender.last_seq


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{max(1, n // 1024)} KB"


def _person(staff: Staff) -> Person:
    return Person(
        id=staff.id,
        full_name=staff.full_name,
        role=staff.role,
        school_id=staff.school_id,
        district_id=staff.district_id,
        province_id=staff.province_id,
        language=staff.language or "vi",
    )


def _typed(incoming: Incoming, text: str) -> Incoming:
    """The command's argument, treated as if typed as the answer to the first question."""
    return Incoming(
        channel=incoming.channel,
        user_id=incoming.user_id,
        chat_id=incoming.chat_id,
        received_at=incoming.received_at,
        text=text,
    )
