"""Computers: receipts (batches), sponsors, handovers with photo evidence, the sector-database confirmation.

Every function works inside the caller's session and never commits: the form that gathered the answers
calls it from its completion step, so the record and the end of the form commit together or not at all.
Rules are checked here, not only in the forms, because the same records will come from other doors
(imports, corrections) and the database must never hold a handover the rules forbid.

Refusals raise ``ComputersError`` whose ``message()`` is a Vietnamese sentence for the person (English on
request). Role checks raise its subclass ``NotAllowed``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.clock import LOCAL_TZ, fmt_date
from bot.programme import Programme
from conversations.i18n import T
from conversations.text import fold
from storage import audit
from storage.models import (
    Batch,
    Conversation,
    Device,
    DeviceType,
    Flag,
    FlagKind,
    Handover,
    HandoverPhoto,
    HandoverStatus,
    Photo,
    PhotoKind,
    ReviewStatus,
    Role,
    School,
    Source,
    Sponsor,
    SponsorKind,
    Staff,
    Student,
)
from storage.phones import normalize_phone
from storage.photos import PhotoStore, StoredPhoto, capture_time_flag, hamming

MAX_QUANTITY = 10_000  # one school never receives more at once; a bigger number is a typo
SERIAL_RE = re.compile(r"^[A-Z0-9][A-Z0-9\-_/.]{0,63}$")
_SERIAL_SPLIT = re.compile(r"[\n,;]+")

DEVICE_TYPE_LABELS: dict[str, T] = {
    DeviceType.LAPTOP: T(vi="Máy tính xách tay (laptop)", en="Laptop"),
    DeviceType.DESKTOP: T(vi="Máy tính để bàn", en="Desktop computer"),
    DeviceType.TABLET: T(vi="Máy tính bảng", en="Tablet"),
}
SPONSOR_KIND_LABELS: dict[str, T] = {
    SponsorKind.PROGRAMME: T(vi="Chương trình (qua Phòng GD&ĐT)", en="Programme (via the district office)"),
    SponsorKind.BUSINESS: T(vi="Doanh nghiệp", en="Business"),
    SponsorKind.ORGANISATION: T(vi="Tổ chức", en="Organisation"),
    SponsorKind.INDIVIDUAL: T(vi="Cá nhân", en="Individual"),
}


class ComputersError(Exception):
    """A request the rules refuse. ``message(lang)`` is shown to the person as is."""

    def __init__(self, code: str, text: T, **values: object) -> None:
        self.code = code
        self.text = text
        self.values = values
        super().__init__(f"{code}: {text('en', **values)}")

    def message(self, lang: str = "vi") -> str:
        return self.text(lang, **self.values)

    @property
    def message_vi(self) -> str:
        return self.message("vi")


class NotAllowed(ComputersError):
    """The person's role or school does not allow this."""


class Conflict(ComputersError):
    """Someone else wrote the same computer or photo at the same moment. Unlike the other refusals this one
    comes from the database after writing, so the caller's transaction is spoiled and must be rolled back;
    the person can simply try again (the checks then refuse with a precise reason)."""


# --- texts of the refusals (kept beside the rules that raise them) ----------------------------------------

_NOT_PRINCIPAL = T(
    vi="Chỉ hiệu trưởng của trường mới được {what}.",
    en="Only the school's principal may {what_en}.",
)
_NOT_STAFF_OF_SCHOOL = T(
    vi="Bạn chỉ được ghi nhận bàn giao cho học sinh và lô máy của trường mình.",
    en="You may only record handovers for your own school's students and batches.",
)
_INACTIVE = T(vi="Tài khoản của bạn đã ngừng hoạt động.", en="Your account is no longer active.")
_QUANTITY = T(
    vi="Số lượng phải là số nguyên từ 1 đến {max} (bạn nhập {value}).",
    en="The quantity must be a whole number from 1 to {max} (you entered {value}).",
)
_FUTURE = T(
    vi="Ngày {day} ở trong tương lai. Hôm nay là {today}.",
    en="{day} is in the future. Today is {today}.",
)
_EMPTY = T(vi="Vui lòng nhập {what}.", en="Please enter {what_en}.")
_SERIAL_BAD = T(
    vi="Số sê-ri “{serial}” không hợp lệ: chỉ gồm chữ, số và các dấu - _ / . (tối đa 64 ký tự).",
    en="Serial “{serial}” is not valid: letters, digits and - _ / . only (at most 64 characters).",
)
_SERIAL_REPEATED = T(
    vi="Số sê-ri {serial} bị nhập trùng trong danh sách.",
    en="Serial {serial} appears twice in the list.",
)
_SERIAL_TAKEN = T(
    vi="Số sê-ri {serial} đã có trong hệ thống (lô nhận ngày {day} của {school}).",
    en="Serial {serial} is already recorded (batch received {day} by {school}).",
)
_SERIAL_COUNT = T(
    vi="Có {count} số sê-ri nhưng số lượng máy là {quantity}: cần nhập đủ một số sê-ri cho mỗi máy, "
    "hoặc bỏ qua bước này nếu không có số sê-ri.",
    en="{count} serials for {quantity} computers: give one serial per computer, or skip serials.",
)
_PHONE = T(vi="Số điện thoại liên hệ không hợp lệ: {reason}.", en="The contact phone is not valid: {reason}.")
_STUDENT_MISSING = T(vi="Không tìm thấy học sinh này.", en="This student was not found.")
_STUDENT_NOT_APPROVED = T(
    vi="Học sinh {name} chưa được hiệu trưởng duyệt nên chưa thể bàn giao máy.",
    en="Student {name} has not been approved by the principal yet.",
)
_STUDENT_SERVED = T(
    vi="Học sinh {name} đã được bàn giao máy (bàn giao #{id} ngày {day}).",
    en="Student {name} already received a computer (handover #{id} on {day}).",
)
_BATCH_MISSING = T(vi="Không tìm thấy lô máy này.", en="This batch was not found.")
_BATCH_OTHER_SCHOOL = T(
    vi="Lô máy này thuộc trường khác, không thể bàn giao cho học sinh {name}.",
    en="This batch belongs to another school and cannot go to {name}.",
)
_BATCH_EMPTY = T(
    vi="Lô máy nhận ngày {day} đã bàn giao hết ({quantity}/{quantity} máy).",
    en="The batch received {day} is fully handed over ({quantity}/{quantity}).",
)
_SERIAL_NEEDED = T(
    vi="Lô máy này có số sê-ri: vui lòng chọn số sê-ri của máy bàn giao.",
    en="This batch has serial numbers: please choose the serial of the computer handed over.",
)
_SERIAL_NOT_IN_BATCH = T(
    vi="Lô máy này không ghi số sê-ri nên không cần nhập số sê-ri.",
    en="This batch has no serial numbers; none is needed.",
)
_SERIAL_NOT_FREE = T(
    vi="Số sê-ri {serial} không thuộc lô này hoặc đã được bàn giao. Vui lòng chọn số sê-ri khác.",
    en="Serial {serial} is not in this batch or was already handed over. Please choose another.",
)
_BEFORE_RECEIPT = T(
    vi="Ngày bàn giao {day} trước ngày trường nhận lô máy ({received}).",
    en="Handover date {day} is before the batch was received ({received}).",
)
_NO_PHOTO = T(
    vi="Cần ít nhất một ảnh chụp buổi bàn giao.",
    en="At least one photo of the handover is needed.",
)
_CONFLICT = T(
    vi="Máy hoặc học sinh này vừa được người khác ghi nhận bàn giao. Vui lòng kiểm tra và thử lại.",
    en="Someone else has just recorded this computer or student. Please check and try again.",
)
_REUSED = T(
    vi="Ảnh này đã dùng cho bàn giao #{id} ({whom}, ngày {day}).",
    en="This photo was already used for handover #{id} ({whom}, {day}).",
)
_NEAR = T(
    vi="Ảnh này gần giống ảnh đã dùng cho bàn giao #{id} ({whom}, ngày {day}).",
    en="This photo closely resembles one used for handover #{id} ({whom}, {day}).",
)


# --- small pure helpers the forms share -------------------------------------------------------------------


def parse_serials(text: str) -> list[str]:
    """Serials typed one per line or separated by commas/semicolons, upper-cased (service tags are printed
    in capitals; people type them either way, and 'abc1' and 'ABC1' are the same machine).

    Raises ComputersError naming the first invalid or repeated serial.
    """
    serials = [s.strip().upper() for s in _SERIAL_SPLIT.split(text or "")]
    serials = [s for s in serials if s]
    seen: set[str] = set()
    for serial in serials:
        if not SERIAL_RE.match(serial):
            raise ComputersError("serial_invalid", _SERIAL_BAD, serial=serial[:80])
        if serial in seen:
            raise ComputersError("serial_repeated", _SERIAL_REPEATED, serial=serial)
        seen.add(serial)
    return serials


def check_serial_count(serials: Sequence[str], quantity: int) -> None:
    """No serials, or exactly one per computer."""
    if serials and len(serials) != quantity:
        raise ComputersError("serial_count", _SERIAL_COUNT, count=len(serials), quantity=quantity)


def check_quantity(value: int) -> int:
    if not 1 <= value <= MAX_QUANTITY:
        raise ComputersError("quantity", _QUANTITY, max=f"{MAX_QUANTITY:,}".replace(",", "."), value=value)
    return value


def local_today(now: datetime, tz: ZoneInfo = LOCAL_TZ) -> date:
    return now.astimezone(tz).date()


def check_not_future(day: date, *, now: datetime, tz: ZoneInfo = LOCAL_TZ) -> date:
    today = local_today(now, tz)
    if day > today:
        raise ComputersError("future_date", _FUTURE, day=fmt_date(day), today=fmt_date(today))
    return day


def batch_label(batch: Batch, lang: str = "vi") -> str:
    """'Lô 20/11/2021 — Dell Latitude 3420 (còn 3/10)': what a person picks a batch by."""
    left = batch.quantity - batch.handed_over
    if lang == "en":
        return f"Batch {fmt_date(batch.received_on)} — {batch.brand_model} ({left}/{batch.quantity} left)"
    return f"Lô {fmt_date(batch.received_on)} — {batch.brand_model} (còn {left}/{batch.quantity})"


# --- who may do what --------------------------------------------------------------------------------------


def _staff(session: Session, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None or not staff.active:
        raise NotAllowed("inactive", _INACTIVE)
    return staff


def require_principal(session: Session, *, staff_id: int, school_id: int, what: str, what_en: str) -> Staff:
    staff = _staff(session, staff_id)
    if staff.role != Role.PRINCIPAL or staff.school_id != school_id:
        raise NotAllowed("not_principal", _NOT_PRINCIPAL, what=what, what_en=what_en)
    return staff


def require_school_staff(session: Session, *, staff_id: int, school_id: int) -> Staff:
    staff = _staff(session, staff_id)
    if staff.role not in (Role.PRINCIPAL, Role.TEACHER) or staff.school_id != school_id:
        raise NotAllowed("other_school", _NOT_STAFF_OF_SCHOOL)
    return staff


def _audit(
    session: Session, *, actor_id: int | None, action: str, entity: str, entity_id: int | None,
    before: dict | None, after: dict | None, now: datetime,
) -> None:
    audit.record(session, actor_id=actor_id, action=action, entity=entity, entity_id=entity_id, before=before,
                 after=after, now=now)


# --- sponsors and batches ---------------------------------------------------------------------------------


def record_sponsor(
    session: Session, *, school_id: int, by: int, name: str, kind: SponsorKind, contact_name: str | None,
    contact_phone: str | None, now: datetime,
) -> Sponsor:
    """The sponsor of a donation, recorded by the school's principal. A sponsor already recorded by this
    school under the same name (accents and case aside) is reused and its contact updated."""
    require_principal(session, staff_id=by, school_id=school_id,
                      what="ghi nhận nhà tài trợ", what_en="record sponsors")
    name = " ".join((name or "").split())
    if not name:
        raise ComputersError("empty", _EMPTY, what="tên nhà tài trợ", what_en="the sponsor's name")
    phone = None
    if contact_phone:
        try:
            phone = normalize_phone(contact_phone)
        except ValueError as exc:
            raise ComputersError("phone", _PHONE, reason=str(exc)) from None
    contact_name = " ".join((contact_name or "").split()) or None
    key = fold(name)
    existing = next(
        (sp for sp in session.scalars(select(Sponsor).where(Sponsor.school_id == school_id)) if fold(sp.name) == key),
        None,
    )
    if existing is not None:
        before = {"kind": existing.kind, "contact_name": existing.contact_name, "contact_phone": existing.contact_phone}
        existing.kind = SponsorKind(kind)
        existing.contact_name = contact_name or existing.contact_name
        existing.contact_phone = phone or existing.contact_phone
        after = {"kind": existing.kind, "contact_name": existing.contact_name, "contact_phone": existing.contact_phone}
        if before != after:
            _audit(session, actor_id=by, action="update", entity="sponsor", entity_id=existing.id,
                   before=before, after=after, now=now)
        return existing
    sponsor = Sponsor(name=name, kind=SponsorKind(kind), contact_name=contact_name, contact_phone=phone,
                      school_id=school_id, created_at=now)
    session.add(sponsor)
    session.flush()
    _audit(session, actor_id=by, action="create", entity="sponsor", entity_id=sponsor.id, before=None,
           after={"name": name, "kind": sponsor.kind, "contact_name": contact_name, "contact_phone": phone}, now=now)
    return sponsor


def taken_serials(session: Session, serials: Iterable[str]) -> list[tuple[str, Batch, School]]:
    """Serials of ``serials`` already in the database, with the batch and school that hold them."""
    wanted = list(dict.fromkeys(serials))
    found: list[tuple[str, Batch, School]] = []
    for start in range(0, len(wanted), 500):  # stay far below any driver's bound-parameter limit
        chunk = wanted[start : start + 500]
        rows = session.execute(
            select(Device.serial, Batch, School)
            .join(Batch, Batch.id == Device.batch_id)
            .join(School, School.id == Batch.school_id)
            .where(Device.serial.in_(chunk))
        ).all()
        found.extend((r[0], r[1], r[2]) for r in rows)
    order = {s: i for i, s in enumerate(wanted)}
    return sorted(found, key=lambda r: order[r[0]])


def check_serials_free(session: Session, serials: Sequence[str]) -> None:
    """Raise naming the first serial already recorded anywhere (a serial is one physical machine)."""
    taken = taken_serials(session, serials)
    if taken:
        serial, batch, school = taken[0]
        raise ComputersError("serial_taken", _SERIAL_TAKEN, serial=serial, day=fmt_date(batch.received_on),
                             school=school.name)


def record_batch(
    session: Session, *, school_id: int, by: int, source: Source, sponsor_id: int | None, received_on: date,
    quantity: int, device_type: DeviceType, brand_model: str, condition: str, serials: Sequence[str] = (),
    now: datetime, tz: ZoneInfo = LOCAL_TZ,
) -> Batch:
    """Computers the school received at once. Serials are optional; when given there must be exactly one per
    computer (so "serial required iff the batch has serials" holds for every handover), each unique in the
    whole database. A serial inserted concurrently by someone else fails the caller's commit on the unique
    constraint rather than slipping through."""
    require_principal(session, staff_id=by, school_id=school_id,
                      what="ghi nhận máy tính trường nhận", what_en="record computers received")
    check_quantity(quantity)
    check_not_future(received_on, now=now, tz=tz)
    brand_model = " ".join((brand_model or "").split())
    if not brand_model:
        raise ComputersError("empty", _EMPTY, what="hãng và model máy", what_en="the brand and model")
    condition = " ".join((condition or "").split())
    if not condition:
        raise ComputersError("empty", _EMPTY, what="tình trạng máy", what_en="the condition")
    serials = parse_serials("\n".join(serials)) if serials else []
    check_serial_count(serials, quantity)
    check_serials_free(session, serials)
    if sponsor_id is not None:
        sponsor = session.get(Sponsor, sponsor_id)
        if sponsor is None or sponsor.school_id not in (None, school_id):
            raise NotAllowed("other_school", _NOT_STAFF_OF_SCHOOL)
    batch = Batch(
        school_id=school_id, source=Source(source), sponsor_id=sponsor_id, received_on=received_on,
        quantity=quantity, device_type=DeviceType(device_type), brand_model=brand_model[:200],
        condition=condition[:200], handed_over=0, recorded_by=by, created_at=now,
    )
    session.add(batch)
    session.flush()
    if serials:
        # Core bulk insert: a 500-laptop batch is one statement, not 500 ORM objects.
        session.execute(Device.__table__.insert(), [{"batch_id": batch.id, "serial": s} for s in serials])
    _audit(session, actor_id=by, action="create", entity="batch", entity_id=batch.id, before=None, after={
        "source": batch.source, "sponsor_id": sponsor_id, "received_on": received_on.isoformat(),
        "quantity": quantity, "device_type": batch.device_type, "brand_model": batch.brand_model,
        "condition": batch.condition, "serials": len(serials),
    }, now=now)
    return batch


def batches_with_devices_left(session: Session, *, school_id: int) -> list[Batch]:
    """The school's batches that still have computers to hand over, oldest receipt first."""
    return list(session.scalars(
        select(Batch)
        .where(Batch.school_id == school_id, Batch.handed_over < Batch.quantity)
        .order_by(Batch.received_on, Batch.id)
    ))


def batch_has_serials(session: Session, *, batch_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Device.batch_id == batch_id))))


def free_serials(session: Session, *, batch_id: int) -> list[str]:
    """Serials of the batch that no handover holds. A withdrawn handover keeps its device until it is
    released (device_id set to NULL), matching the unique constraint on handover.device_id."""
    held = select(Handover.device_id).where(Handover.device_id.is_not(None))
    return list(session.scalars(
        select(Device.serial).where(Device.batch_id == batch_id, Device.id.not_in(held)).order_by(Device.serial)
    ))


# --- students waiting for a computer ----------------------------------------------------------------------


def _active_handover_of(session: Session, student_id: int) -> Handover | None:
    return session.scalars(
        select(Handover).where(Handover.student_id == student_id, Handover.status == HandoverStatus.ACTIVE)
    ).first()


def students_to_serve(session: Session, *, school_id: int, query: str = "", limit: int = 8) -> list[Student]:
    """Approved students of the school without an active handover whose name (accents optional) has a word
    starting with each typed word, or whose code starts with the typed digits. A school has at most a few hundred
    students in need, so matching happens in Python, where accent folding works the same on both databases."""
    served = select(Handover.student_id).where(Handover.status == HandoverStatus.ACTIVE)
    students = session.scalars(
        select(Student)
        .where(Student.school_id == school_id, Student.status == ReviewStatus.APPROVED, Student.id.not_in(served))
    ).all()
    # Sorted here, not in SQL: database collations disagree on "Đ" (SQLite puts it after "Z").
    students = sorted(students, key=lambda st: (fold(st.full_name), st.id))
    q = query.strip()
    if q.isdigit():
        return [s for s in students if s.code.startswith(q)][:limit]
    words = fold(q).split()

    def matches(name: str) -> bool:  # every typed word starts a word of the name: "an" finds An, not Văn
        parts = fold(name).split()
        return all(any(p.startswith(w) for p in parts) for w in words)

    return [s for s in students if matches(s.full_name)][:limit]


# --- handovers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Linked:
    """Another active handover that used a photo (or a look-alike) of this one."""

    handover: Handover
    student_name: str
    school_name: str


def _describe(other: _Linked, for_school_id: int) -> str:
    # A principal sees student names of their own school only; another school's handover is named by school.
    if other.handover.school_id == for_school_id:
        return f"học sinh {other.student_name}"
    return other.school_name


def record_handover(
    session: Session, *, student_id: int, batch_id: int, serial: str | None, handed_over_on: date, by: int,
    photos: Sequence[tuple[StoredPhoto, PhotoKind]], programme: Programme, now: datetime,
) -> tuple[Handover, list[Flag]]:
    """One computer to one student, with its photos, in the caller's transaction.

    Returns the handover and every flag created: those of the new handover and those added to the earlier
    handovers whose photos were reused (possibly of another school: notify that school's principal too).
    The photo files must already be in the store; if the caller's transaction fails, it calls
    ``discard_unreferenced`` so no file outlives its failed handover.
    """
    # Lock the student (PostgreSQL; SQLite has one writer anyway) so two people recording the same child at
    # the same moment cannot both pass the "not yet served" check.
    student = session.scalars(select(Student).where(Student.id == student_id).with_for_update()).first()
    if student is None:
        raise ComputersError("student_missing", _STUDENT_MISSING)
    require_school_staff(session, staff_id=by, school_id=student.school_id)
    if student.status != ReviewStatus.APPROVED:
        raise ComputersError("not_approved", _STUDENT_NOT_APPROVED, name=student.full_name)
    served = _active_handover_of(session, student.id)
    if served is not None:
        raise ComputersError("served", _STUDENT_SERVED, name=student.full_name, id=served.id,
                             day=fmt_date(served.handed_over_on))
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise ComputersError("batch_missing", _BATCH_MISSING)
    if batch.school_id != student.school_id:
        raise NotAllowed("other_school", _BATCH_OTHER_SCHOOL, name=student.full_name)
    if batch.handed_over >= batch.quantity:
        raise ComputersError("batch_empty", _BATCH_EMPTY, day=fmt_date(batch.received_on), quantity=batch.quantity)

    device_id: int | None = None
    if batch_has_serials(session, batch_id=batch.id):
        if not serial:
            raise ComputersError("serial_needed", _SERIAL_NEEDED)
        serial = serial.strip().upper()
        # Lock the machine's row first (PostgreSQL): a concurrent handover of the same serial waits here, and
        # the check below, a new statement, then sees its commit and refuses with a precise reason.
        device_id = session.scalar(
            select(Device.id).where(Device.batch_id == batch.id, Device.serial == serial).with_for_update()
        )
        held = device_id is not None and session.scalar(select(exists().where(Handover.device_id == device_id)))
        if device_id is None or held:
            raise ComputersError("serial_not_free", _SERIAL_NOT_FREE, serial=serial)
    elif serial:
        raise ComputersError("serial_not_in_batch", _SERIAL_NOT_IN_BATCH)

    check_not_future(handed_over_on, now=now, tz=programme.tz)
    if handed_over_on < batch.received_on:
        raise ComputersError("before_receipt", _BEFORE_RECEIPT, day=fmt_date(handed_over_on),
                             received=fmt_date(batch.received_on))
    if not any(kind == PhotoKind.SCENE for _, kind in photos):
        raise ComputersError("no_photo", _NO_PHOTO)

    # The counter moves only while devices are left, in one statement: two handovers racing for the last
    # computer cannot both succeed, whatever they read before.
    moved = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.handed_over < Batch.quantity)
        .values(handed_over=Batch.handed_over + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise ComputersError("batch_empty", _BATCH_EMPTY, day=fmt_date(batch.received_on), quantity=batch.quantity)
    session.refresh(batch)

    handover = Handover(
        student_id=student.id, batch_id=batch.id, device_id=device_id, school_id=student.school_id,
        handed_over_on=handed_over_on, recorded_by=by, status=HandoverStatus.ACTIVE,
        csdl_due_at=programme.handover_update_due(handed_over_on), created_at=now, updated_at=now,
    )
    session.add(handover)
    try:
        session.flush()
        # Unique keys that a concurrent writer can beat us to: handover.device_id, photo.sha256.
        linked_photos = _attach_photos(session, handover=handover, photos=photos, by=by, now=now)
    except IntegrityError:
        raise Conflict("conflict", _CONFLICT) from None
    flags = _reuse_flags(session, handover=handover, student=student, linked=linked_photos,
                         threshold=programme.photos.near_duplicate_bits, now=now)
    for photo, _kind in linked_photos:
        reason = capture_time_flag(photo.captured_at, handed_over_on,
                                   max_days_before=programme.photos.capture_max_days_before)
        if reason:
            flags.append(_flag(session, handover=handover, kind=FlagKind.CAPTURE_TIME, detail=reason,
                               related=None, now=now))
    session.flush()
    _audit(session, actor_id=by, action="create", entity="handover", entity_id=handover.id, before=None, after={
        "student_id": student.id, "batch_id": batch.id, "serial": serial if device_id else None,
        "handed_over_on": handed_over_on.isoformat(), "photos": [p.sha256 for p, _ in linked_photos],
        "flags": [f.kind for f in flags],
    }, now=now)
    return handover, flags


def _attach_photos(
    session: Session, *, handover: Handover, photos: Sequence[tuple[StoredPhoto, PhotoKind]], by: int, now: datetime,
) -> list[tuple[Photo, PhotoKind]]:
    """Photo rows (the existing row when the image is already known) linked to the handover."""
    linked: list[tuple[Photo, PhotoKind]] = []
    seen: set[str] = set()
    for stored, kind in photos:
        if stored.sha256 in seen:
            continue  # the same picture sent twice in one handover is one piece of evidence
        seen.add(stored.sha256)
        photo = session.scalars(select(Photo).where(Photo.sha256 == stored.sha256)).first()
        if photo is None:
            photo = Photo(
                sha256=stored.sha256, dhash=stored.dhash, path=stored.path, thumb_path=stored.thumb_path,
                width=stored.width, height=stored.height, size_bytes=stored.size_bytes,
                captured_at=stored.captured_at, had_location=stored.had_location, uploaded_by=by, created_at=now,
            )
            session.add(photo)
            session.flush()
        session.add(HandoverPhoto(handover_id=handover.id, photo_id=photo.id, kind=PhotoKind(kind)))
        linked.append((photo, PhotoKind(kind)))
    session.flush()
    return linked


def _linked_handovers(session: Session, photo_ids: Iterable[int], *, exclude: int) -> dict[int, list[_Linked]]:
    """photo id -> other ACTIVE handovers using it (with student and school names for the flag text)."""
    ids = list(set(photo_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(HandoverPhoto.photo_id, Handover, Student.full_name, School.name)
        .join(Handover, Handover.id == HandoverPhoto.handover_id)
        .join(Student, Student.id == Handover.student_id)
        .join(School, School.id == Handover.school_id)
        .where(HandoverPhoto.photo_id.in_(ids), Handover.id != exclude, Handover.status == HandoverStatus.ACTIVE)
        .order_by(Handover.id)
    ).all()
    out: dict[int, list[_Linked]] = {}
    for photo_id, other, student_name, school_name in rows:
        out.setdefault(photo_id, []).append(_Linked(other, student_name, school_name))
    return out


def photos_near(session: Session, dhash: int, *, threshold: int, exclude_ids: Iterable[int] = ()) -> list[int]:
    """Ids of stored photos whose dHash is within ``threshold`` bits of ``dhash``.

    Hamming distance cannot use an index, so every (id, dhash) is compared, inside the database so no row
    crosses to Python: PostgreSQL (14+) with ``bit_count``, SQLite with a deterministic function registered
    on the connection. At 100,000 photos that is ~17 ms (PostgreSQL) / ~26 ms (SQLite) against ~180 ms for
    fetching the rows and comparing in Python.
    """
    skip = set(exclude_ids)
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name == "postgresql" and (dialect.server_version_info or (0,)) >= (14,):
        rows = conn.exec_driver_sql(
            "SELECT id FROM photo WHERE bit_count(CAST(dhash # %(h)s AS bit(64))) <= %(t)s",
            {"h": dhash, "t": threshold},
        ).scalars().all()
    elif dialect.name == "sqlite":
        conn.connection.dbapi_connection.create_function("fieldbot_hamming64", 2, hamming, deterministic=True)
        rows = conn.exec_driver_sql(
            "SELECT id FROM photo WHERE fieldbot_hamming64(dhash, ?) <= ?", (dhash, threshold)
        ).scalars().all()
    else:
        rows = [pid for pid, other in conn.exec_driver_sql("SELECT id, dhash FROM photo")
                if hamming(dhash, other) <= threshold]
    return [pid for pid in rows if pid not in skip]


def _reuse_flags(
    session: Session, *, handover: Handover, student: Student, linked: list[tuple[Photo, PhotoKind]],
    threshold: int, now: datetime,
) -> list[Flag]:
    own_ids = {p.id for p, _ in linked}
    exact = _linked_handovers(session, own_ids, exclude=handover.id)
    near_ids: dict[int, set[int]] = {}
    for photo, _ in linked:
        for pid in photos_near(session, photo.dhash, threshold=threshold, exclude_ids=own_ids):
            near_ids.setdefault(pid, set()).add(photo.id)
    near = _linked_handovers(session, near_ids, exclude=handover.id)

    me = _Linked(handover, student.full_name, session.get(School, handover.school_id).name)
    flags: list[Flag] = []
    flagged: set[int] = set()  # one flag per pair of handovers: the strongest reason wins
    for kind, text, groups in ((FlagKind.PHOTO_REUSED, _REUSED, exact), (FlagKind.PHOTO_NEAR_DUPLICATE, _NEAR, near)):
        for others in groups.values():
            for other in others:
                if other.handover.id in flagged:
                    continue
                flagged.add(other.handover.id)
                flags.append(_flag(session, handover=handover, kind=kind, related=other.handover.id, now=now,
                                   detail=text("vi", id=other.handover.id, whom=_describe(other, handover.school_id),
                                               day=fmt_date(other.handover.handed_over_on))))
                flags.append(_flag(session, handover=other.handover, kind=kind, related=handover.id, now=now,
                                   detail=text("vi", id=handover.id, whom=_describe(me, other.handover.school_id),
                                               day=fmt_date(handover.handed_over_on))))
    return flags


def _flag(session: Session, *, handover: Handover, kind: FlagKind, detail: str, related: int | None,
          now: datetime) -> Flag:
    flag = Flag(handover_id=handover.id, school_id=handover.school_id, kind=kind, detail=detail,
                related_handover_id=related, created_at=now)
    session.add(flag)
    return flag


def discard_unreferenced(session: Session, *, store: PhotoStore, photos: Iterable[StoredPhoto]) -> int:
    """After a failed handover transaction: delete the files of photos no committed row references.

    ``session`` must be a fresh one (the failed one is rolled back). A file is kept when a Photo row with
    its sha256 exists, because an earlier (or concurrent, committed) handover uses the same image; the store
    itself keeps files it did not newly write. Returns how many photos were discarded.
    """
    photos = list({p.sha256: p for p in photos}.values())
    if not photos:
        return 0
    known = set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_([p.sha256 for p in photos]))))
    gone = 0
    for photo in photos:
        if photo.sha256 not in known and photo.is_new:
            store.discard(photo)
            gone += 1
    return gone


def _sha256s_in(data: Any) -> Iterator[str]:
    """Every photo a form in progress remembers (answers, and photos collected in the current step)."""
    if isinstance(data, dict):
        sha = data.get("sha256")
        if isinstance(sha, str):
            yield sha
        for value in data.values():
            yield from _sha256s_in(value)
    elif isinstance(data, list):
        for value in data:
            yield from _sha256s_in(value)


def discard_orphan_files(session: Session, *, store: PhotoStore, older_than: datetime) -> int:
    """Delete photo files that nothing uses: no Photo row and no form in progress names them.

    They come from handovers cancelled (/huy) after their photos were sent. Files modified after
    ``older_than`` are left alone, so a photo whose step has not committed yet is never taken from under it
    (the handover form touches a re-sent existing file for the same reason). Returns the number of photos
    removed (a photo and its thumbnail count once). Run it from a periodic sweep.
    """
    used = set(session.scalars(select(Photo.sha256)))
    for data in session.scalars(select(Conversation.data)):
        used.update(_sha256s_in(data))
    cutoff = older_than.timestamp()
    removed: set[str] = set()
    for sub in ("photos", "thumbs"):
        for path in (store.media_dir / sub).glob("*/*.jpg"):
            sha = path.stem
            if sha in used:
                continue
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed.add(sha)
    return len(removed)


def stored_photo_to_dict(photo: StoredPhoto) -> dict[str, Any]:
    """A StoredPhoto as JSON-safe form state (the form remembers photos between messages)."""
    return {
        "sha256": photo.sha256, "dhash": photo.dhash, "path": photo.path, "thumb_path": photo.thumb_path,
        "width": photo.width, "height": photo.height, "size_bytes": photo.size_bytes,
        "captured_at": photo.captured_at.isoformat() if photo.captured_at else None,
        "had_location": photo.had_location, "is_new": photo.is_new,
    }


def stored_photo_from_dict(data: dict[str, Any]) -> StoredPhoto:
    captured = data.get("captured_at")
    return StoredPhoto(
        sha256=data["sha256"], dhash=int(data["dhash"]), path=data["path"], thumb_path=data["thumb_path"],
        width=int(data["width"]), height=int(data["height"]), size_bytes=int(data["size_bytes"]),
        captured_at=datetime.fromisoformat(captured) if captured else None,
        had_location=bool(data.get("had_location")), is_new=bool(data.get("is_new")),
    )


# --- the sector-database confirmation ---------------------------------------------------------------------


def handovers_awaiting_csdl(session: Session, *, school_id: int) -> list[Handover]:
    """Active handovers of the school not yet confirmed in the sector database, the most urgent first."""
    return list(session.scalars(
        select(Handover)
        .where(Handover.school_id == school_id, Handover.status == HandoverStatus.ACTIVE,
               Handover.csdl_updated_at.is_(None))
        .order_by(Handover.csdl_due_at, Handover.id)
    ))


def confirm_csdl(session: Session, *, handover_ids: Sequence[int], by: int, school_id: int, now: datetime) -> int:
    """The principal confirms these handovers are entered in the sector database ("Đã cập nhật CSDL ngành").

    Only the school's own, active, unconfirmed handovers change (a stale tap or another school's id is
    ignored, not an error); each change is audited. Returns how many were confirmed.
    """
    require_principal(session, staff_id=by, school_id=school_id,
                      what="xác nhận đã cập nhật CSDL ngành", what_en="confirm the sector-database update")
    ids = sorted(set(handover_ids))
    if not ids:
        return 0
    targets = session.scalars(
        select(Handover)
        .where(Handover.id.in_(ids), Handover.school_id == school_id, Handover.status == HandoverStatus.ACTIVE,
               Handover.csdl_updated_at.is_(None))
        .with_for_update()
    ).all()
    for handover in targets:
        handover.csdl_updated_at = now
        handover.csdl_confirmed_by = by
        handover.updated_at = now
        _audit(session, actor_id=by, action="confirm_csdl", entity="handover", entity_id=handover.id,
               before={"csdl_updated_at": None}, after={"csdl_updated_at": now.isoformat()}, now=now)
    session.flush()
    return len(targets)


def open_flags(session: Session, *, school_id: int) -> list[Flag]:
    return list(session.scalars(
        select(Flag).where(Flag.school_id == school_id, Flag.resolved_at.is_(None)).order_by(Flag.created_at, Flag.id)
    ))
