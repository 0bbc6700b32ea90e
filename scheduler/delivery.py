"""The deliverer that drains the outbox: due rows, grouped per person, sent on their channels with
retries and fallback. How a failure is read is defined with the senders in ``core/ports.py``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import Clock
from core.i18n import T
from core.messages import Outgoing, esc, plain_text
from core.phones import display_phone
from core.ports import ChannelSender, DeliveryError, Mailer, RetryLater, Unreachable
from core.programme import Programme
from core.vocabulary import NotificationStatus
from scheduler.rules import MAX_ITEMS_PER_MESSAGE, RULES_BY_NAME, compose, stage_kind, subject_line
from storage import batching, outbox
from storage.db import session_scope
from storage.models import ChatIdentity, Conversation, Notification, Staff

log = logging.getLogger(__name__)


# --- the deliverer ----------------------------------------------------------------------------------------------

CHAT_CHANNELS = ("telegram", "zalo", "console")
EMAIL = "email"
NO_CHANNEL = "không có kênh liên lạc: chưa liên kết Telegram/Zalo (hoặc đã chặn bot) và không có email"
NO_CHAT = "chưa liên kết Telegram/Zalo (hoặc đã chặn bot)"
ATTACHMENT_FAILED = "biểu đồ kèm theo không gửi được"
NO_SMTP = "chưa cấu hình SMTP (FIELDBOT_SMTP_URL): không gửi được email"
GIVEN_UP = "vẫn lỗi sau {n} lần thử trong {hours} giờ trong khi kênh này vẫn gửi được cho người khác"


@dataclass
class GroupOutcome:
    """What happened to one message (a group of outbox rows for one person, one rule, one stage kind)."""

    recipient: str
    rule: str
    stage: str
    items: int
    status: str  # sent | retry | failed
    channels: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Attempt:
    done: set[str]
    sent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)  # chat identities that refused: marked blocked
    retry_after: float | None = None
    chat: tuple[ChannelSender, str] | None = None  # the chat that took the message (for an attachment)

    def retry_later(self, error: str, retry_after: float | None) -> None:
        self.errors.append(error)
        if retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, retry_after)


@dataclass
class DeliveryReport:
    messages: int = 0  # chat messages and e-mails that went out
    rows_sent: int = 0
    rows_retrying: int = 0
    rows_failed: int = 0
    groups: list[GroupOutcome] = field(default_factory=list)
    stopped: bool = False  # the lease was lost: another process delivers now


class Deliverer:
    """Drains the outbox: due rows, grouped per person, rule and stage kind, sent on the person's channels.

    Per row, ``channels_done`` records what already went out, so a retry never repeats a channel: when SMTP
    is down the Telegram copy is still sent once, and the e-mail follows when SMTP is back.
    """

    def __init__(
        self,
        *,
        db: Engine,
        programme: Programme,
        clock: Clock,
        senders: Mapping[str, ChannelSender],
        mailer: Mailer | None = None,
        max_attempts: int = 8,
        backoff: timedelta = timedelta(minutes=1),
        max_backoff: timedelta = timedelta(hours=1),
        batch_size: int = 500,
        concurrency: int = 16,
        unreachable_after: timedelta = timedelta(hours=1),
        unreachable_attempts: int | None = None,
        claim_ttl: timedelta = timedelta(minutes=2),
        claim_clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.programme = programme
        self.clock = clock
        self.senders = dict(senders)
        self.mailer = mailer
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.claim_ttl = claim_ttl  # a claimed row is due again after this if its deliverer died
        self.claim_clock = claim_clock or clock  # real time, even when `fieldbot sweep --now` freezes ``clock``
        # Unreachable on evidence (a platform such as Zalo has no "blocked" answer, and its 403 is a server
        # fault): a chat is given up (marked blocked, the next channel tried) only when one message to it has
        # failed transiently on every attempt, for ``unreachable_attempts`` attempts (default: the last one)
        # spanning at least ``unreachable_after``, while the same channel delivered to someone else in that time
        # (so the platform works; the trouble is that chat). The mark is lifted when the person writes again.
        self.unreachable_after = unreachable_after
        self.unreachable_attempts = unreachable_attempts or max_attempts
        self._delivered_at: dict[str, datetime] = {}  # channel -> last successful send by this deliverer
        self._stopping = False

    def stop(self) -> None:
        """Shutting down: messages not yet started stay pending for the next run (or the other process)."""
        self._stopping = True

    async def deliver_due(
        self,
        *,
        keep_going: Callable[[], Awaitable[bool]] | None = None,
        max_rows: int | None = None,
        recipient_id: int | None = None,
        rule: str | None = None,
    ) -> DeliveryReport:
        """Deliver every row due now (one person's only, with ``recipient_id``; one rule's, with ``rule``).
        Each row is claimed before it is sent (``storage.outbox.claim``), so deliverers in several processes
        never send a row twice. ``keep_going`` is asked before each batch (the lease renewal)."""
        report = DeliveryReport()
        seen: set[int] = set()
        while (max_rows is None or len(seen) < max_rows) and not self._stopping:
            if keep_going is not None and not await keep_going():
                report.stopped = True
                break
            limit = self.batch_size if max_rows is None else min(self.batch_size, max_rows - len(seen))
            due, rows, people, identities = await asyncio.to_thread(self._load, limit, seen, recipient_id, rule)
            if not due:
                break
            seen.update(r.id for r in due)
            groups = _interleave(_group(rows))
            semaphore = asyncio.Semaphore(self.concurrency)

            await asyncio.gather(*(self._run_group(g, people, identities, semaphore, report) for g in groups))
        for g in report.groups:
            n = g.items
            report.messages += len(g.channels)
            if g.status == "sent":
                report.rows_sent += n
            elif g.status == "retry":
                report.rows_retrying += n
            else:
                report.rows_failed += n
        return report

    async def _run_group(
        self,
        group: list[Notification],
        people: dict[int, Staff],
        identities: dict[int, list[ChatIdentity]],
        semaphore: asyncio.Semaphore,
        report: DeliveryReport,
    ) -> None:
        async with semaphore:
            if self._stopping:
                return
            outcome = await self._deliver_group(group, people, identities)
        report.groups.append(outcome)

    def _load(self, limit: int, seen: set[int], recipient_id: int | None, rule: str | None):
        now = self.clock.now()
        with session_scope(self.db) as session:
            real_now = self.claim_clock.now()
            due = outbox.due_rows(
                session, now=now, limit=limit, recipient_id=recipient_id, rule=rule, real_now=real_now
            )
            due = [r for r in due if r.id not in seen]
            taken = outbox.claim(session, ids=[r.id for r in due], real_now=real_now, until=real_now + self.claim_ttl)
            rows = [r for r in due if r.id in taken]
            people, identities = recipients(session, rows) if rows else ({}, {})
        return due, rows, people, identities

    async def _deliver_group(
        self, rows: list[Notification], people: dict[int, Staff], identities: dict[int, list[ChatIdentity]]
    ) -> GroupOutcome:
        first = rows[0]
        person = people.get(first.recipient_id) if first.recipient_id is not None else None
        lang = (person.language if person else None) or "vi"
        text = compose(first.rule, first.stage, [r.text for r in rows], lang=lang, programme=self.programme)
        done = set(filter(None, (first.channels_done or "").split(",")))
        attempt = _Attempt(done=done)

        # Part 1, the person's chat (or, for someone no chat reaches, their own e-mail from the roster).
        if first.recipient_id is None:
            person_part = "n/a"
        elif done & set(CHAT_CHANNELS) or (first.email is None and EMAIL in done):
            person_part = "ok"
        elif person is None or not person.active:
            attempt.errors.append("người nhận không còn trong danh sách hoặc đã ngừng hoạt động")
            person_part = "lost"
        else:
            person_part = await self._chat(
                attempt, person, identities.get(person.id, []), Outgoing(text=text), first=first
            )
            if person_part in ("lost", "elsewhere") and first.email is None and person.email:
                person_part = await self._email(attempt, person.email, first, text, lang, len(rows))
            if person_part == "elsewhere":
                person_part = "retry"  # linked on a channel another process (or a later start) serves
            if person_part == "lost":
                attempt.errors.append(NO_CHANNEL if not (person.email or first.email) else NO_CHAT)
        # Part 2, the e-mail copy the district contact always gets.
        if first.email is None or EMAIL in done:
            email_part = "n/a" if first.email is None else "ok"
        elif self.mailer is None and first.recipient_id is not None:
            email_part = "n/a"  # no SMTP in this deployment: the chat copy is what there is; said in last_error
            attempt.errors.append(NO_SMTP)
        else:
            email_part = await self._email(attempt, first.email, first, text, lang, len(rows))

        attempts = first.attempts + 1
        if "retry" in (person_part, email_part) and attempts < self.max_attempts:
            status = NotificationStatus.PENDING
        else:
            # The district contact who read it by e-mail has it, even if their chat failed.
            reached = person_part in ("ok", "n/a") or (first.email is not None and email_part == "ok")
            status = NotificationStatus.SENT if reached and email_part in ("ok", "n/a") else NotificationStatus.FAILED
        now = self.clock.now()
        error = "; ".join(dict.fromkeys(attempt.errors)) or None
        # Recorded at once (a crash now repeats at most this one message), in a worker thread: a commit must
        # not stall the event loop, or the rate limiter's slots pass unused and the chats wait.
        await asyncio.to_thread(
            self._record,
            rows,
            status=status,
            attempts=attempts,
            done=done,
            error=error,
            now=now,
            retry_after=attempt.retry_after,
            blocked=attempt.blocked,
            tell_district=person_part == "lost" and first.email is None,
        )
        await self._attach(attempt, rows, lang, recorded_error=error)  # after the record: drawing takes a moment
        outcome = GroupOutcome(
            recipient=person.full_name if person else (first.email or "?"),
            rule=first.rule,
            stage=first.stage,
            items=len(rows),
            status={"sent": "sent", "pending": "retry", "failed": "failed"}[status],
            channels=attempt.sent,
            error=error,
        )
        log.info(
            "notification rule=%s stage=%s items=%d recipient=%s channels=%s status=%s%s",
            first.rule,
            first.stage,
            len(rows),
            first.recipient_id or "email",
            ",".join(attempt.sent) or "-",
            outcome.status,
            f" error={error}" if error else "",
        )
        return outcome

    async def _chat(
        self,
        attempt: _Attempt,
        person: Staff,
        identities: list[ChatIdentity],
        message: Outgoing,
        *,
        first: Notification | None = None,
    ) -> str:
        """The person's chats, latest linked first: "ok", "retry" (transient: same chat later, no second copy
        elsewhere), "elsewhere" (linked only on a channel this process does not serve) or "lost" (every chat
        refused or given up on evidence, or none linked)."""
        unserved = False
        for ident in identities:
            sender = self.senders.get(ident.channel)
            if sender is None:
                attempt.errors.append(f"{ident.channel}: kênh chưa được cấu hình trong tiến trình này")
                unserved = True
                continue
            try:
                await sender.send(ident.chat_id, message)
            except RetryLater as exc:
                if first is not None and self._gone(ident.channel, first):
                    attempt.blocked.append(ident.id)
                    hours = f"{self.unreachable_after.total_seconds() / 3600:g}"
                    given_up = GIVEN_UP.format(n=first.attempts + 1, hours=hours)
                    attempt.errors.append(f"{ident.channel}: {exc} ({given_up})")
                    continue
                attempt.retry_later(f"{ident.channel}: {exc}", exc.retry_after)
                return "retry"
            except Unreachable as exc:
                attempt.blocked.append(ident.id)
                attempt.errors.append(f"{ident.channel}: {exc}")
                continue
            except DeliveryError as exc:
                attempt.errors.append(f"{ident.channel}: {exc}")
                continue
            except Exception as exc:  # a sender bug must not stop the other messages
                log.exception("sender %s failed unexpectedly", ident.channel)
                attempt.retry_later(f"{ident.channel}: {type(exc).__name__}", None)
                return "retry"
            attempt.done.add(ident.channel)
            attempt.sent.append(ident.channel)
            attempt.chat = (sender, ident.chat_id)
            self._delivered_at[ident.channel] = self.clock.now()
            return "ok"
        return "elsewhere" if unserved else "lost"

    def _gone(self, channel: str, first: Notification) -> bool:
        """Evidence that this chat, not the platform, is the trouble (see ``__init__``)."""
        since = first.created_at
        if since is None or first.attempts + 1 < self.unreachable_attempts:
            return False
        if self.clock.now() - since < self.unreachable_after:
            return False
        delivered = self._delivered_at.get(channel)
        return delivered is not None and delivered >= since

    async def _attach(
        self, attempt: _Attempt, rows: list[Notification], lang: str, *, recorded_error: str | None
    ) -> None:
        """The rule's picture (the digest's chart) after its message, which is already recorded as sent: the
        message is what is owed. A chart that fails (or a crash while drawing it) is written on the
        notification, never retried, since a retry would repeat the message; /tonghop draws it any time."""
        first = rows[0]
        rule = RULES_BY_NAME.get(first.rule)
        if rule is None or rule.attachment is None or attempt.chat is None:
            return
        sender, chat_id = attempt.chat

        def draw() -> bytes | None:
            with session_scope(self.db) as session:
                return rule.attachment(
                    session, programme=self.programme, subject=first.subject, now=self.clock.now(), lang=lang
                )

        try:
            png = await asyncio.to_thread(draw)
            if png:
                await sender.send(chat_id, Outgoing(photo=png))
        except Exception as exc:  # DeliveryError or a drawing bug: the digest itself went out
            log.warning("attachment for rule=%s not sent: %s", first.rule, exc)
            failed = f"{sender.channel}: {ATTACHMENT_FAILED}: {type(exc).__name__}"
            error = "; ".join(filter(None, [recorded_error, failed]))
            await asyncio.to_thread(self._note, [r.id for r in rows], error)

    def _note(self, ids: list[int], error: str) -> None:
        with session_scope(self.db) as session:
            session.execute(update(Notification).where(Notification.id.in_(ids)).values(last_error=error))

    async def _email(self, attempt: _Attempt, to: str, first: Notification, text: str, lang: str, n: int) -> str:
        if self.mailer is None:
            attempt.errors.append(NO_SMTP)
            return "lost"
        subject = subject_line(first.rule, first.stage, lang=lang, programme=self.programme, n=n)
        body = plain_text(text) + SIGNATURE(lang, name=self.programme.programme.name)
        try:
            await self.mailer.send(to, subject, body)
        except RetryLater as exc:
            attempt.retry_later(f"email: {exc}", exc.retry_after)
            return "retry"
        except DeliveryError as exc:
            attempt.errors.append(f"email: {exc}")
            return "lost"
        attempt.done.add(EMAIL)
        attempt.sent.append(EMAIL)
        return "ok"

    def _record(
        self,
        rows: list[Notification],
        *,
        status: str,
        attempts: int,
        done: set[str],
        error: str | None,
        now: datetime,
        retry_after: float | None,
        blocked: list[int],
        tell_district: bool,
    ) -> None:
        if status == NotificationStatus.PENDING:
            delay = min(self.backoff * (2 ** (attempts - 1)), self.max_backoff)
            if retry_after is not None:
                delay = max(delay, timedelta(seconds=retry_after))
            next_at = quiet_release(self.programme, now + delay)
        else:
            next_at = now  # for failed rows: when it gave up (the digest lists the last 24 hours)
        ids = [r.id for r in rows]
        with session_scope(self.db) as session:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(ids))
                .values(
                    status=status,
                    attempts=attempts,
                    next_attempt_at=next_at,
                    claimed_until=None,
                    channels_done=",".join(sorted(done)) or None,
                    last_error=error,
                    sent_at=now if status == NotificationStatus.SENT else None,
                )
            )
            if blocked:
                session.execute(
                    update(ChatIdentity)
                    .where(ChatIdentity.id.in_(blocked), ChatIdentity.blocked_at.is_(None))
                    .values(blocked_at=now)
                )
            if status == NotificationStatus.FAILED and tell_district and rows[0].rule != "undeliverable":
                _tell_the_district(session, rows, programme=self.programme, now=now, reason=error or NO_CHANNEL)


SIGNATURE = T(
    vi="\n\n—\nfieldbot, chương trình “{name}”. Tin nhắn tự động, vui lòng không trả lời email này.",
    en="\n\n—\nfieldbot, programme “{name}”. Automatic message, please do not reply to this e-mail.",
)
UNDELIVERED = T(
    vi="• <b>{name}</b> ({role}, {school}, {phone}) chưa nhận được “{what}”: {why}",
    en="• <b>{name}</b> ({role}, {school}, {phone}) did not get “{what}”: {why}",
)


def _tell_the_district(
    session: Session, rows: list[Notification], *, programme: Programme, now: datetime, reason: str
) -> None:
    """A person no channel reaches: the district contact hears about it instead of the reminder vanishing."""
    from core.vocabulary import ROLE_LABELS
    from scheduler.context import Candidate, SweepContext
    from scheduler.rules import title

    staff = session.get(Staff, rows[0].recipient_id)
    if staff is None:
        return
    ctx = SweepContext(session=session, programme=programme, now=now)
    contact = ctx.district_contact(staff.district_id)
    if contact is None or contact.staff_id == staff.id:
        log.error("notification to staff=%s could not be delivered and nobody else can be told", staff.id)
        return
    school = ctx.school(staff.school_id).name if staff.school_id else "-"
    role = ROLE_LABELS.get(staff.role)
    lang = contact.language
    out = []
    for row in rows:
        line = UNDELIVERED(
            lang,
            name=esc(staff.full_name),
            role=role(lang) if role else esc(staff.role),
            school=esc(school),
            phone=display_phone(staff.phone),
            what=title(row.rule, lang),
            why=esc(reason[:200]),
        )
        c = Candidate("undeliverable", f"notification:{row.id}", contact, "late", now, line, escalation=True)
        out.append(c.row(now=now, deliver_at=quiet_release(programme, now)))
    outbox.insert_ignoring_duplicates(session, out)


def quiet_release(programme: Programme, at: datetime) -> datetime:
    from scheduler.context import SweepContext

    return SweepContext(session=None, programme=programme, now=at).deliver_from(at)  # type: ignore[arg-type]


def recipients(session: Session, rows: list[Notification]) -> tuple[dict[int, Staff], dict[int, list[ChatIdentity]]]:
    """The people the rows are for, and their chats in the order to try: the channel of a form they have in
    progress first (that is where they are now), then the latest linked; never a blocked one."""
    ids = sorted({r.recipient_id for r in rows if r.recipient_id is not None})
    people: dict[int, Staff] = {}
    identities: dict[int, list[ChatIdentity]] = {}
    for chunk in batching.chunks(session, ids):
        people.update(
            {s.id: s for s in session.execute(select(Staff).where(batching.any_of(session, Staff.id, chunk))).scalars()}
        )
        busy = dict(
            session.execute(
                select(Conversation.staff_id, Conversation.channel).where(
                    batching.any_of(session, Conversation.staff_id, chunk)
                )
            ).all()
        )
        for ident in session.execute(
            select(ChatIdentity)
            .where(batching.any_of(session, ChatIdentity.staff_id, chunk), ChatIdentity.blocked_at.is_(None))
            .order_by(ChatIdentity.linked_at.desc(), ChatIdentity.id.desc())  # the latest linked chat first
        ).scalars():
            identities.setdefault(ident.staff_id, []).append(ident)
        for staff_id, channel in busy.items():
            if staff_id in identities:
                identities[staff_id].sort(key=lambda ident, ch=channel: ident.channel != ch)  # stable
    return people, identities


def _group(rows: list[Notification]) -> list[list[Notification]]:
    """Rows for one person, rule, stage kind and delivery state become one message (at most 40 items)."""
    groups: dict[tuple, list[Notification]] = {}
    for r in rows:
        key = (
            r.recipient_id,
            r.email if r.recipient_id is None else r.email or "",
            r.rule,
            stage_kind(r.stage),
            r.channels_done or "",
            r.attempts,
        )
        if r.rule not in RULES_BY_NAME:
            key += (r.stage,)
        groups.setdefault(key, []).append(r)
    out = []
    for g in groups.values():
        out += [g[i : i + MAX_ITEMS_PER_MESSAGE] for i in range(0, len(g), MAX_ITEMS_PER_MESSAGE)]
    return out


def _interleave(groups: list[list[Notification]]) -> list[list[Notification]]:
    """Round-robin over recipients, so consecutive messages go to different chats and the 1-per-second-per-chat
    limit never holds up the others."""
    by_person: dict[tuple, list[list[Notification]]] = {}
    for g in groups:
        by_person.setdefault((g[0].recipient_id, g[0].email), []).append(g)
    queues = list(by_person.values())
    out: list[list[Notification]] = []
    while queues:
        for q in queues:
            out.append(q.pop(0))
        queues = [q for q in queues if q]
    return out


class Waker:
    """Delivers the notices a conversation step has just queued, at once, in any process (a worker without
    the scheduler too): ``poke()`` after the step commits. Pokes while a delivery runs coalesce into one
    more run; rows are claimed, so this and the scheduler's deliverer never send one twice."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self._task: asyncio.Task | None = None
        self._again = False

    def poke(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="notice-delivery")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.deliverer.deliver_due(rule=outbox.NOTICE)
            except Exception:  # the scheduler's tick delivers what is left; nothing is lost
                log.exception("notice delivery failed")
            if not self._again:
                return

    async def idle(self) -> None:
        """Wait until nothing is being delivered (shutdown, tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
