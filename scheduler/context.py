"""What a rule sees (``SweepContext``) and what it produces (``Candidate``).

A rule is a query plus texts: it asks the database what is due or late at ``ctx.now`` and yields one
candidate per (subject, recipient) for the stage that is current now. The sweep turns candidates into
outbox rows; the context answers the questions every rule has (who is the principal, who is the district
contact, when is "tomorrow morning" in the programme's time zone) and caches the answers for one sweep.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.clock import UTC
from core.phones import display_phone
from core.programme import Programme
from core.vocabulary import NotificationStatus, Role
from reports.late import ReadAlready
from storage.batching import any_of, chunks
from storage.models import ChatIdentity, District, School, Staff


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person to notify: a roster member (``staff_id``), and/or an address that always gets an e-mail copy
    (the district contact)."""

    staff_id: int | None
    email: str | None = None
    name: str = ""
    language: str = "vi"

    @property
    def key(self) -> str:
        if self.staff_id is not None:
            return f"s{self.staff_id}"
        digest = hashlib.sha1((self.email or "").lower().encode()).hexdigest()[:12]
        return f"m{digest}"


@dataclass(slots=True)  # not frozen: a national tick makes 4,000 of them, and a frozen __init__ costs twice as much
class Candidate:
    """One notification a rule says is due now. ``line`` is this item's text (HTML-lite, user values
    escaped); the rule's header and footer are added when it is sent, so items of the same rule and stage
    for the same person go out as one message.

    A rule may give the text as a function (``body``): most of what is due each tick was recorded by an
    earlier tick, and the sweep renders only the candidates it records (``rendered``), so a steady tick
    neither formats thousands of lines nor loads the people they name."""

    rule: str
    subject: str  # "school:12", "handover:55", "batch:3", "student:9", "district:1"
    recipient: Recipient
    stage: str  # "d-3", "remind", "late", "late:2021-11-22", "2021-11-22" ...
    at: datetime  # when this stage became due (UTC)
    body: str | Callable[[], str]
    escalation: bool = False
    # When it stops being worth sending (None: until the subject is resolved). A morning reminder is worth
    # its day: one that could only go out tomorrow (bot down, quiet hours) is dropped for the next stage.
    until: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}:{self.recipient.key}:{self.stage}"

    @property
    def line(self) -> str:
        return self.body() if callable(self.body) else self.body

    def rendered(self) -> Candidate:
        """This candidate with its text formatted (within the sweep's transaction: the text may read)."""
        return self if isinstance(self.body, str) else replace(self, body=self.body())

    def row(self, *, now: datetime, deliver_at: datetime) -> dict:
        """The outbox row recording this notification (``storage.outbox.insert_ignoring_duplicates``)."""
        return dict(
            key=self.key,
            rule=self.rule,
            subject=self.subject,
            stage=self.stage,
            recipient_id=self.recipient.staff_id,
            email=self.recipient.email,
            text=self.line,
            status=NotificationStatus.PENDING,
            attempts=0,
            next_attempt_at=deliver_at,
            created_at=now,
        )


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    full_name: str
    phone: str
    email: str | None
    role: str
    school_id: int | None
    district_id: int
    language: str
    active: bool
    reachable: bool  # has a chat channel that has not blocked the bot, or an e-mail

    def recipient(self) -> Recipient:
        return _recipient_of(self.id, self.full_name, self.language or "vi")

    @property
    def phone_display(self) -> str:
        return _display_phone(self.phone)


@dataclass(frozen=True, slots=True)
class SchoolInfo:
    id: int
    code: str
    name: str
    district_id: int
    needs_report_submitted_at: datetime | None
    active: bool


@dataclass
class SweepContext:
    session: Session
    programme: Programme
    now: datetime
    # How a rule is named to people ("Nhắc chốt báo cáo"...): the sweep passes ``scheduler.rules.title``, so
    # the digest can name failed notifications without importing the rule table that lists the digest.
    rule_title: Callable[[str, str], str] = lambda rule, lang: rule
    _schools: dict[int, SchoolInfo] = field(default_factory=dict)
    _principals: dict[int, list[Person]] = field(default_factory=dict)
    _people: dict[int, Person] = field(default_factory=dict)
    _contacts: dict[int, Recipient | None] = field(default_factory=dict)
    _province_officers: dict[int, list[Recipient]] = field(default_factory=dict)
    _districts: dict[int, Any] | None = None  # rows of id, code, name, province_id
    # Rows a finder read that a later one needs again in the same tick, by name ("handovers": the open handovers
    # find_csdl read, ...): the province escalation takes its late items from them (``reports.late.ReadAlready``).
    shared_rows: dict[str, list] = field(default_factory=dict)
    _moments: dict[tuple[date, time], datetime] = field(default_factory=dict)

    def read(self, statement):
        """Run a read on the session's connection (SQLAlchemy Core): the sweep reads plain rows, and the ORM's
        per-statement and per-row work was a tenth of a national tick."""
        return self.session.connection().execute(statement)

    # --- time, in the programme's zone -------------------------------------------------------------------

    @property
    def tz(self):
        return self.programme.tz

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def at_local(self, day: date, moment: time) -> datetime:
        # Remembered: a tick asks for the same few days' mornings thousands of times.
        key = (day, moment)
        at = self._moments.get(key)
        if at is None:
            at = self._moments[key] = datetime.combine(day, moment, tzinfo=self.tz).astimezone(UTC)
        return at

    def end_of_day(self, day: date) -> datetime:
        return self.at_local(day + timedelta(days=1), time.min)

    def morning(self, day: date) -> datetime:
        """The reminder hour (``[reminders] morning``) of ``day``, as UTC."""
        return self.at_local(day, self.programme.reminders.morning)

    def first_morning_from(self, at: datetime) -> datetime:
        """The first reminder hour at or after ``at``: reminders that cross a threshold during a day are
        collected into that day's (or the next day's) morning message instead of trickling in."""
        day = self.local_date(at)
        m = self.morning(day)
        return m if m >= at else self.morning(day + timedelta(days=1))

    def deliver_from(self, at: datetime) -> datetime:
        """``at`` moved out of quiet hours: a message due at 23:00 goes out at the end of the quiet time."""
        r = self.programme.reminders
        local = at.astimezone(self.tz)
        t = local.time()
        start, end = r.quiet_start, r.quiet_end
        if start == end:
            return at
        quiet = (start <= t or t < end) if start > end else (start <= t < end)
        if not quiet:
            return at
        day = local.date() if t < end else local.date() + timedelta(days=1)
        return self.at_local(day, end)

    # --- schools and people ---------------------------------------------------------------------------

    def districts(self) -> dict[int, Any]:
        if self._districts is None:
            columns = (District.id, District.code, District.name, District.province_id)
            self._districts = {d.id: d for d in self.read(select(*columns)).all()}
        return self._districts

    def load_schools(self, ids: Iterable[int], *, principals: bool) -> None:
        """Schools and their districts' contacts, in bulk; with ``principals`` their principals too (a rule
        that reminds them). Without, principals are read only if a text that names them is rendered
        (``principals``), once for every school loaded so far."""
        missing = {i for i in ids if i not in self._schools}
        for chunk in chunks(self.session, sorted(missing)):
            rows = self.read(select(*_SCHOOL).where(any_of(self.session, School.id, chunk))).all()
            for r in rows:
                self._schools[r.id] = SchoolInfo(*r)
        if principals:
            self.load_principals(ids)
        # Every rule that loads schools may escalate to their districts' contacts: one query for all of them.
        self.load_district_contacts({self._schools[i].district_id for i in missing if i in self._schools})

    def school(self, school_id: int) -> SchoolInfo:
        if school_id not in self._schools:
            self.load_schools([school_id], principals=False)
        return self._schools[school_id]

    def late_rows(self) -> ReadAlready | None:
        """What the finders read this tick that holds every late item (``reports.late.ReadAlready``), if they all
        ran (every sweep; not a finder run alone)."""
        shared = self.shared_rows
        if not {"handovers", "batches", "pending"} <= shared.keys():
            return None
        return ReadAlready(
            handovers=shared["handovers"],
            batches=shared["batches"],
            pending=shared["pending"],
            unreported=shared.get("unreported"),
            school=self.school_in_a_province,
        )

    def school_in_a_province(self, school_id: int) -> tuple[str, int] | None:
        """(name, district id) of an active school whose district has a province; None otherwise."""
        school = self.school(school_id)
        district = self.districts().get(school.district_id)
        if not school.active or district is None or district.province_id is None:
            return None
        return school.name, school.district_id

    def principals(self, school_id: int) -> list[Person]:
        if school_id not in self._principals:
            self.load_principals({school_id, *self._schools})
        return self._principals.get(school_id, [])

    def person(self, staff_id: int) -> Person | None:
        if staff_id not in self._people:
            self.load_people([staff_id])
        return self._people.get(staff_id)

    def load_people(self, ids: Iterable[int]) -> None:
        missing = sorted({i for i in ids if i not in self._people})
        for chunk in chunks(self.session, missing):
            staff = self.read(select(*_PERSON).where(any_of(self.session, Staff.id, chunk))).all()
            self._add_people(staff)

    def load_principals(self, ids: Iterable[int]) -> None:
        school_ids = {i for i in ids if i not in self._principals}
        if not school_ids:
            return
        for sid in school_ids:
            self._principals.setdefault(sid, [])
        for chunk in chunks(self.session, sorted(school_ids)):
            staff = self.read(
                select(*_PERSON)
                .where(any_of(self.session, Staff.school_id, chunk), Staff.role == Role.PRINCIPAL, Staff.active)
                .order_by(Staff.id)
            ).all()
            for p in self._add_people(staff):
                self._principals[p.school_id].append(p)

    def _add_people(self, staff: list) -> list[Person]:
        """``staff``: rows of ``_PERSON`` (plain rows: loading ORM objects cost 40 ms a national sweep)."""
        people = []
        for s in staff:
            p = Person(
                id=s.id,
                full_name=s.full_name,
                phone=s.phone,
                email=s.email,
                role=s.role,
                school_id=s.school_id,
                district_id=s.district_id,
                language=s.language or "vi",
                active=s.active,
                reachable=s.chat or bool(s.email),
            )
            self._people[s.id] = p
            if s.active:
                people.append(p)
        return people

    def district_contact(self, district_id: int) -> Recipient | None:
        """Who gets escalations for a district: the programme's named contact for that district (matched to
        the roster by phone so they also get chat messages, always e-mailed), else the district officer in
        the roster, else the programme's first contact (by e-mail)."""
        if district_id not in self._contacts:
            self.load_district_contacts([district_id])
        return self._contacts[district_id]

    def load_district_contacts(self, district_ids: Iterable[int]) -> None:
        """``district_contact`` for many districts at once: their officers in one query (per 500 districts) and
        the chosen people in one more, instead of three queries a district (700 districts nationally)."""
        missing = sorted({d for d in district_ids if d not in self._contacts})
        if not missing:
            return
        officers: dict[int, list] = defaultdict(list)
        for chunk in chunks(self.session, missing):
            for o in self._add_people(
                self.read(
                    select(*_PERSON)
                    .where(
                        any_of(self.session, Staff.district_id, chunk),
                        Staff.role == Role.DISTRICT_OFFICER,
                        Staff.active,
                    )
                    .order_by(Staff.id)
                ).all()
            ):
                officers[o.district_id].append(o)
        districts = self.districts()
        for district_id in missing:
            district = districts.get(district_id)
            code = district.code if district else None
            contact = next((c for c in self.programme.contacts if c.district_code == code), None)
            theirs = officers.get(district_id, [])
            result: Recipient | None
            if contact is not None:
                match = next((o for o in theirs if o.phone == contact.phone_e164), None)
                result = Recipient(
                    staff_id=match.id if match else None,
                    email=contact.email,
                    name=contact.name,
                    language=(match.language if match else None) or "vi",
                )
            elif theirs:
                o = theirs[0]
                result = Recipient(staff_id=o.id, email=o.email, name=o.full_name, language=o.language or "vi")
            else:
                c = self.programme.contacts[0]
                result = Recipient(staff_id=None, email=c.email, name=c.name)
            self._contacts[district_id] = result

    def province_officers(self, province_id: int) -> list[Recipient]:
        """The active province officers (Sở GD&ĐT) of a province: they get the province's escalations and digest."""
        if province_id not in self._province_officers:
            self.load_province_officers([province_id])
        return list(self._province_officers[province_id])

    def load_province_officers(self, province_ids: Iterable[int]) -> None:
        """``province_officers`` for many provinces at once (63 nationally): one query, and one for the people."""
        missing = sorted({p for p in province_ids if p not in self._province_officers})
        if not missing:
            return
        for p in missing:
            self._province_officers[p] = []
        for chunk in chunks(self.session, missing):
            rows = self.read(
                select(*_PERSON, Staff.province_id)
                .where(
                    any_of(self.session, Staff.province_id, chunk), Staff.role == Role.PROVINCE_OFFICER, Staff.active
                )
                .order_by(Staff.id)
            ).all()
            self._add_people(rows)
            for o in rows:
                self._province_officers[o.province_id].append(
                    Recipient(staff_id=o.id, email=o.email, name=o.full_name, language=o.language or "vi")
                )


_SCHOOL = (School.id, School.code, School.name, School.district_id, School.needs_report_submitted_at, School.active)

# What the sweep reads of a person (``_add_people``, ``district_contact``, ``province_officers``).
_PERSON = (
    Staff.id,
    Staff.full_name,
    Staff.phone,
    Staff.email,
    Staff.role,
    Staff.school_id,
    Staff.district_id,
    Staff.language,
    Staff.active,
    # Reachable by chat: a chat account that has not blocked the bot (read with the person, not in a query more).
    # A scalar subquery with LIMIT, not EXISTS: PostgreSQL may answer EXISTS by hashing every chat account (40,000
    # nationally) for a few hundred people; this is one index probe a person.
    select(ChatIdentity.id)
    .where(ChatIdentity.staff_id == Staff.id, ChatIdentity.blocked_at.is_(None))
    .limit(1)
    .scalar_subquery()
    .is_not(None)
    .label("chat"),
)

# A person named in thousands of candidates a tick (a principal of a school with many late handovers) is the same
# recipient each time: made once.
_recipient_of = lru_cache(maxsize=65_536)(
    lambda staff_id, name, language: Recipient(staff_id, name=name, language=language)
)

# Parsing with phonenumbers costs ~50 µs a number; a steady sweep names the same principals every tick (1,400
# nationally when 1% of the schools are late): remembered for the life of the scheduler process.
_display_phone = lru_cache(maxsize=65_536)(display_phone)


def group_by(items: Iterable, key) -> dict:
    out: dict = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out
