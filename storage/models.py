"""The domain of DESIGN.md as sqlmodel tables.

Enumerations are stored as short strings (StrEnum values), not database enums, so adding a category or a
status is a code change, not a migration on two databases. Every timestamp is timezone-aware UTC
(``UTCDateTime``); calendar facts people type (birth date, handover date) are plain dates.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.vocabulary import HandoverStatus, NotificationStatus, PhotoKind, ReviewStatus
from storage.types import UTCDateTime


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


# --- organisation and people -------------------------------------------------------------------------


class Province(SQLModel, table=True):
    """A province's department of education (Sở GD&ĐT): its districts, and its officers who see them all."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    name: str = Field(max_length=200)


class District(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    name: str = Field(max_length=200)
    province_id: int | None = Field(default=None, foreign_key="province.id", index=True)  # None: no province level


class School(SQLModel, table=True):
    # The sweep asks every tick which schools have not submitted their needs report: after the deadline a few
    # hundred of 40,000 nationally, read from this index instead of the table.
    __table_args__ = (
        Index(
            "ix_school_needs_open",
            "id",
            sqlite_where=text("needs_report_submitted_at IS NULL"),
            postgresql_where=text("needs_report_submitted_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    name: str = Field(max_length=200)
    level: str = Field(max_length=8)  # SchoolLevel
    district_id: int = Field(foreign_key="district.id", index=True)
    active: bool = True
    needs_report_submitted_at: datetime | None = _ts()
    needs_report_submitted_by: int | None = None  # staff.id; no FK: staff already references school


class Staff(SQLModel, table=True):
    # Officers by district or province (the sweep's escalations, every tick): without the role first, finding
    # the officers of 400 districts reads every teacher of those districts.
    __table_args__ = (
        Index("ix_staff_role_district", "role", "district_id"),
        Index("ix_staff_role_province", "role", "province_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    full_name: str = Field(max_length=120)
    phone: str = Field(sa_column=Column(String(20), unique=True, nullable=False))  # E.164
    email: str | None = Field(default=None, max_length=200)
    role: str = Field(max_length=20)  # Role
    # Every role but the province officer belongs to a district; the province officer to a province only.
    district_id: int | None = Field(default=None, foreign_key="district.id", index=True)
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    province_id: int | None = Field(default=None, foreign_key="province.id", index=True)
    active: bool = True
    language: str = Field(default="vi", max_length=5)
    created_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)


class ChatIdentity(SQLModel, table=True):
    """One chat account of a person on one channel; a person may have several."""

    __tablename__ = "chat_identity"

    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)  # platform user id
    chat_id: str = Field(max_length=64)  # where to send to that person
    linked_at: datetime | None = _ts(nullable=False)
    blocked_at: datetime | None = _ts()  # the person blocked the bot: deliver elsewhere
    # The newest platform message order (Incoming.seq) applied for this account: an older one arriving late
    # (a redelivery, a slow worker) is refused instead of overwriting a newer step (docs/scaling.md).
    last_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LinkCode(SQLModel, table=True):
    """A one-time code for linking without a contact button (Zalo, console). Only its hash is stored."""

    __tablename__ = "link_code"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    code_hash: str = Field(max_length=128)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    used_at: datetime | None = _ts()


class LinkAttempt(SQLModel, table=True):
    """Wrong codes per (channel, account): five wrong tries lock the attempt for an hour."""

    __tablename__ = "link_attempt"

    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    failures: int = 0
    locked_until: datetime | None = _ts()
    updated_at: datetime | None = _ts(nullable=False)


# --- students in need ----------------------------------------------------------------------------------


class Student(SQLModel, table=True):
    """A student in need (báo cáo nhu cầu): one row per student, reviewed by the principal."""

    __table_args__ = (
        Index("ix_student_school_status", "school_id", "status"),
        Index("ix_student_school_name_dob", "school_id", "full_name", "birth_date"),
        Index("ix_student_pending_since", "status", "created_at"),
        # Covers reports.summary's GROUP BY (school, category, need) over the standing statuses: a province's
        # overview of 200,000 pupils reads this index alone (issue 17: 250 -> ~100 ms).
        Index("ix_student_summary", "school_id", "category", "need", "status", "consent_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    code: str = Field(sa_column=Column(String(12), unique=True, nullable=False))  # mã định danh
    full_name: str = Field(max_length=120)
    birth_date: date | None = None  # None only after the retention purge (see purged_at)
    gender: str = Field(max_length=8)  # Gender
    class_name: str = Field(max_length=16)
    category: str = Field(max_length=32)  # Category
    hardship_reason: str | None = Field(default=None, max_length=500)
    need: str = Field(max_length=16)  # Need
    guardian_name: str | None = Field(default=None, max_length=120)
    guardian_phone: str | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, max_length=1000)
    status: str = Field(default=ReviewStatus.PENDING, max_length=16)
    reject_reason: str | None = Field(default=None, max_length=500)
    late: bool = False  # registered after the school submitted its needs report
    # When the guardian's consent was recorded (/dangky's notice, or completed later); None: registered before
    # consent was asked ("chưa ghi nhận đồng ý"), counted for the principal to complete.
    consent_at: datetime | None = _ts()
    # When the retention purge removed the birth date, hardship reason, guardian and photos (counts stay).
    purged_at: datetime | None = _ts()
    registered_by: int = Field(foreign_key="staff.id")
    reviewed_by: int | None = Field(default=None, foreign_key="staff.id")
    reviewed_at: datetime | None = _ts()
    created_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)
    # The class list (spreadsheet) this entry came from, so /duyet can approve a whole file at once.
    import_id: int | None = Field(default=None, foreign_key="student_import.id", index=True)


class StudentImport(SQLModel, table=True):
    """One class list sent as a spreadsheet and saved (all its rows, in one transaction)."""

    __tablename__ = "student_import"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    file_name: str = Field(max_length=200)
    sha256: str = Field(max_length=64)
    rows: int
    imported_by: int = Field(foreign_key="staff.id")
    created_at: datetime | None = _ts(nullable=False)


# --- computers: sponsors, batches, devices, handovers -----------------------------------------------------


class Sponsor(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)  # SponsorKind
    contact_name: str | None = Field(default=None, max_length=120)
    contact_phone: str | None = Field(default=None, max_length=20)
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)  # who recorded it
    created_at: datetime | None = _ts(nullable=False)


class Batch(SQLModel, table=True):
    """Computers a school received at once from one source (lô máy / tiếp nhận)."""

    __table_args__ = (
        Index("ix_batch_school_received", "school_id", "received_on"),
        # The sweep's "devices received but not handed over" reads only batches with devices left.
        Index(
            "ix_batch_open",
            "received_on",
            sqlite_where=text("handed_over < quantity"),
            postgresql_where=text("handed_over < quantity"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    source: str = Field(max_length=16)  # Source
    sponsor_id: int | None = Field(default=None, foreign_key="sponsor.id")
    received_on: date
    quantity: int
    device_type: str = Field(max_length=16)  # DeviceType
    brand_model: str = Field(max_length=200)
    condition: str = Field(max_length=200)
    handed_over: int = 0  # maintained with each handover so "devices left" needs no count query
    recorded_by: int = Field(foreign_key="staff.id")
    created_at: datetime | None = _ts(nullable=False)


class Device(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    serial: str = Field(sa_column=Column(String(64), unique=True, nullable=False))


class Handover(SQLModel, table=True):
    """One computer given to one student (bàn giao), with photo evidence."""

    __table_args__ = (
        # The sweep asks "which handovers are not confirmed in the sector database and due by T": a partial
        # index on exactly those rows keeps that query proportional to what is due, not to the table.
        Index(
            "ix_handover_csdl_open",
            "csdl_due_at",
            sqlite_where=text("csdl_updated_at IS NULL AND status = 'active'"),
            postgresql_where=text("csdl_updated_at IS NULL AND status = 'active'"),
        ),
        Index("ix_handover_school", "school_id", "handed_over_on"),
        # The reminder for handovers still without signed minutes reads only those rows, by handover day.
        Index(
            "ix_handover_minutes_open",
            "handed_over_on",
            sqlite_where=text("minutes_signed_at IS NULL AND status = 'active'"),
            postgresql_where=text("minutes_signed_at IS NULL AND status = 'active'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    device_id: int | None = Field(default=None, foreign_key="device.id", unique=True)
    school_id: int = Field(foreign_key="school.id")
    handed_over_on: date
    recorded_by: int = Field(foreign_key="staff.id", index=True)
    status: str = Field(default=HandoverStatus.ACTIVE, max_length=16)
    csdl_due_at: datetime | None = _ts(nullable=False)
    csdl_updated_at: datetime | None = _ts()
    csdl_confirmed_by: int | None = Field(default=None, foreign_key="staff.id")
    # When a photo of the signed minutes (biên bản đã ký) was attached; None: not yet.
    minutes_signed_at: datetime | None = _ts()
    created_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)


class Photo(SQLModel, table=True):
    """A stored, normalised photo; content-addressed so the same image is one row and one file."""

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    dhash: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    path: str = Field(max_length=200)
    thumb_path: str = Field(max_length=200)
    width: int
    height: int
    size_bytes: int
    captured_at: datetime | None = _ts()
    had_location: bool = False
    uploaded_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime | None = _ts(nullable=False)


class HandoverPhoto(SQLModel, table=True):
    __tablename__ = "handover_photo"
    __table_args__ = (UniqueConstraint("handover_id", "photo_id"),)
    id: int | None = Field(default=None, primary_key=True)
    handover_id: int = Field(foreign_key="handover.id", index=True)
    photo_id: int = Field(foreign_key="photo.id", index=True)
    kind: str = Field(default=PhotoKind.SCENE, max_length=16)  # PhotoKind


class Flag(SQLModel, table=True):
    """Something the principal (and the district digest) should look at: a reused photo, an odd date."""

    __table_args__ = (Index("ix_flag_open", "school_id", "resolved_at"),)
    id: int | None = Field(default=None, primary_key=True)
    handover_id: int = Field(foreign_key="handover.id", index=True)
    school_id: int = Field(foreign_key="school.id")
    kind: str = Field(max_length=32)  # FlagKind
    params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # flag_text words it
    related_handover_id: int | None = Field(default=None, foreign_key="handover.id")
    created_at: datetime | None = _ts(nullable=False)
    resolved_at: datetime | None = _ts()


# --- conversations, dedupe, outbox, audit -------------------------------------------------------------------


class Conversation(SQLModel, table=True):
    """The one form a person is filling in, saved after every step so a restart resumes it."""

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", unique=True)
    channel: str = Field(max_length=16)  # the form belongs to the channel it was started on
    chat_id: str = Field(max_length=64)
    form: str = Field(max_length=32)
    step: str = Field(max_length=64)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    files: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # photo sha256s it holds
    started_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)


class ProcessedMessage(SQLModel, table=True):
    """Platform messages already handled: the same update delivered twice is processed once."""

    __tablename__ = "processed_message"
    channel: str = Field(primary_key=True, max_length=16)
    message_id: str = Field(primary_key=True, max_length=128)
    processed_at: datetime | None = _ts(nullable=False, index=True)


class Notification(SQLModel, table=True):
    """The outbox: each reminder or escalation recorded once under its key, then delivered with retries."""

    __table_args__ = (Index("ix_notification_deliver", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(200), unique=True, nullable=False))  # rule:subject:recipient:stage
    rule: str = Field(max_length=32)
    subject: str = Field(max_length=64)
    stage: str = Field(max_length=32)
    recipient_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    email: str | None = Field(default=None, max_length=200)  # also by email (district contact)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=NotificationStatus.PENDING, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=False)
    created_at: datetime | None = _ts(nullable=False)
    sent_at: datetime | None = _ts()
    channels_done: str | None = Field(default=None, max_length=100)  # "telegram,email"
    claimed_until: datetime | None = _ts()  # a deliverer is sending it (storage.outbox.claim); real time
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = _ts(nullable=False)
    actor_id: int | None = Field(default=None, foreign_key="staff.id")
    action: str = Field(max_length=32)  # create, update, approve, reject, withdraw, confirm_csdl, link ...
    entity: str = Field(max_length=32)
    entity_id: int | None = None
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


# --- the web view: one-time sign-in links and browser sessions ----------------------------------------------


class WebSignIn(SQLModel, table=True):
    """A one-time sign-in link (``/web`` or ``fieldbot web link``). Only the token's SHA-256 is stored, so a
    copy of the database opens nothing; ``used_at`` makes the second use fail in any process."""

    __tablename__ = "web_sign_in"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    used_at: datetime | None = _ts()


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    via: str = Field(max_length=16)  # link, telegram (Mini App)
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False, index=True)
    ended_at: datetime | None = _ts()  # signed out


class AccessLog(SQLModel, table=True):
    """Who read pupil data beyond their own entries (Decree 13/2023: the record of processing). Append-only:
    ``storage.access_log`` has no update or delete but the retention purge, and a trigger refuses any other
    UPDATE or DELETE (see ``storage.access_log.install_guard``)."""

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_at", "at"), Index("ix_access_log_school_at", "school_id", "at"))
    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = _ts(nullable=False)
    actor_id: int | None = None  # staff.id; no FK, so the record outlives a person leaving the roster
    actor: str = Field(max_length=120)  # the person's name at the time, or "cli:<user>" for the operator
    role: str = Field(max_length=20)
    what: str = Field(max_length=32)  # summary, export, export_cli, backup, erase, purge ...
    scope: str = Field(max_length=120)  # "school:TH-PHUHOA1", "district:TDM", "all", "student:<code>"
    district_id: int | None = None  # for the district's digest and `fieldbot audit --school`
    school_id: int | None = None
    pupils: int = 0  # how many pupils' data the access covered


class AccessLogPurgeGate(SQLModel, table=True):
    """SQLite has no session settings: the purge inserts a row here in its own transaction (and removes it
    before committing) and the access log's DELETE trigger lets deletes through only while it exists."""

    __tablename__ = "access_log_purge_gate"
    id: int | None = Field(default=None, primary_key=True)


class Lease(SQLModel, table=True):
    """Who sweeps and delivers: one holder at a time across processes sharing a database."""

    name: str = Field(primary_key=True, max_length=32)
    holder: str = Field(max_length=100)
    expires_at: datetime | None = _ts(nullable=False)
