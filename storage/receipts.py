"""Computers received by a school: sponsors, batches and their devices (serial numbers).

Every function works inside the caller's session and never commits: the form that gathered the answers
calls it from its completion step, so the record and the end of the form commit together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlmodel import Session

from core.clock import LOCAL_TZ, fmt_date
from core.phones import normalize_phone
from core.text import fmt_int, fold
from core.vocabulary import DeviceType, Source, SponsorKind
from storage import batching
from storage.access import audit_write, check_not_future, require_principal
from storage.errors import (
    NotAllowed,
    RecordError,
)
from storage.models import (
    Batch,
    Device,
    Handover,
    School,
    Sponsor,
)

MAX_QUANTITY = 10_000  # one school never receives more at once; a bigger number is a typo
SERIAL_RE = re.compile(r"^[A-Z0-9][A-Z0-9\-_/.]{0,63}$")
_SERIAL_SPLIT = re.compile(r"[\n,;]+")


def parse_serials(text: str) -> list[str]:
    """Serials typed one per line or separated by commas/semicolons, upper-cased (service tags are printed
    in capitals; people type them either way, and 'abc1' and 'ABC1' are the same machine).

    Raises RecordError naming the first invalid or repeated serial.
    """
    serials = [s.strip().upper() for s in _SERIAL_SPLIT.split(text or "")]
    serials = [s for s in serials if s]
    seen: set[str] = set()
    for serial in serials:
        if not SERIAL_RE.match(serial):
            raise RecordError("serial_invalid", serial=serial[:80])
        if serial in seen:
            raise RecordError("serial_repeated", serial=serial)
        seen.add(serial)
    return serials


def check_serial_count(serials: Sequence[str], quantity: int) -> None:
    """No serials, or exactly one per computer."""
    if serials and len(serials) != quantity:
        raise RecordError("serial_count", count=len(serials), quantity=quantity)


def check_quantity(value: int) -> int:
    if not 1 <= value <= MAX_QUANTITY:
        raise RecordError("quantity", max=MAX_QUANTITY, value=value)
    return value


def batch_label(batch: Batch, lang: str = "vi") -> str:
    """'Lô 20/11/2021 — Dell Latitude 3420 (còn 3/10)': what a person picks a batch by."""
    left, total = fmt_int(batch.quantity - batch.handed_over, lang), fmt_int(batch.quantity, lang)
    if lang == "en":
        return f"Batch {fmt_date(batch.received_on)} — {batch.brand_model} ({left}/{total} left)"
    return f"Lô {fmt_date(batch.received_on)} — {batch.brand_model} (còn {left}/{total})"


# --- sponsors and batches ---------------------------------------------------------------------------------


def record_sponsor(
    session: Session,
    *,
    school_id: int,
    by: int,
    name: str,
    kind: SponsorKind,
    contact_name: str | None,
    contact_phone: str | None,
    now: datetime,
) -> Sponsor:
    """The sponsor of a donation, recorded by the school's principal. A sponsor already recorded by this
    school under the same name (accents and case aside) is reused and its contact updated."""
    require_principal(session, staff_id=by, school_id=school_id, action="record_sponsor")
    name = " ".join((name or "").split())
    if not name:
        raise RecordError("empty", field="sponsor_name")
    phone = None
    if contact_phone:
        try:
            phone = normalize_phone(contact_phone)
        except ValueError as exc:
            raise RecordError("phone", reason=str(exc)) from None
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
            audit_write(
                session,
                actor_id=by,
                action="update",
                entity="sponsor",
                entity_id=existing.id,
                before=before,
                after=after,
                now=now,
            )
        return existing
    sponsor = Sponsor(
        name=name,
        kind=SponsorKind(kind),
        contact_name=contact_name,
        contact_phone=phone,
        school_id=school_id,
        created_at=now,
    )
    session.add(sponsor)
    session.flush()
    audit_write(
        session,
        actor_id=by,
        action="create",
        entity="sponsor",
        entity_id=sponsor.id,
        before=None,
        after={"name": name, "kind": sponsor.kind, "contact_name": contact_name, "contact_phone": phone},
        now=now,
    )
    return sponsor


def taken_serials(session: Session, serials: Iterable[str]) -> list[tuple[str, Batch, School]]:
    """Serials of ``serials`` already in the database, with the batch and school that hold them."""
    wanted = list(dict.fromkeys(serials))
    found: list[tuple[str, Batch, School]] = []
    for chunk in batching.chunks(session, wanted):
        rows = session.execute(
            select(Device.serial, Batch, School)
            .join(Batch, Batch.id == Device.batch_id)
            .join(School, School.id == Batch.school_id)
            .where(batching.any_of(session, Device.serial, chunk))
        ).all()
        found.extend((r[0], r[1], r[2]) for r in rows)
    order = {s: i for i, s in enumerate(wanted)}
    return sorted(found, key=lambda r: order[r[0]])


def check_serials_free(session: Session, serials: Sequence[str]) -> None:
    """Raise naming the first serial already recorded anywhere (a serial is one physical machine)."""
    taken = taken_serials(session, serials)
    if taken:
        serial, batch, school = taken[0]
        raise RecordError("serial_taken", serial=serial, day=batch.received_on, school=school.name)


def record_batch(
    session: Session,
    *,
    school_id: int,
    by: int,
    source: Source,
    sponsor_id: int | None,
    received_on: date,
    quantity: int,
    device_type: DeviceType,
    brand_model: str,
    condition: str,
    serials: Sequence[str] = (),
    now: datetime,
    tz: ZoneInfo = LOCAL_TZ,
    not_before: date | None = None,
) -> Batch:
    """Computers the school received at once. ``not_before``: the programme's first day (no receipt before it). Serials are optional; when given there must be exactly one per
    computer (so "serial required iff the batch has serials" holds for every handover), each unique in the
    whole database. A serial inserted concurrently by someone else fails the caller's commit on the unique
    constraint rather than slipping through."""
    require_principal(
        session,
        staff_id=by,
        school_id=school_id,
        action="record_batch",
    )
    check_quantity(quantity)
    check_not_future(received_on, now=now, tz=tz)
    if not_before is not None and received_on < not_before:
        raise RecordError("before_start", day=received_on, start=not_before)
    brand_model = " ".join((brand_model or "").split())
    if not brand_model:
        raise RecordError("empty", field="brand_model")
    condition = " ".join((condition or "").split())
    if not condition:
        raise RecordError("empty", field="condition")
    serials = parse_serials("\n".join(serials)) if serials else []
    check_serial_count(serials, quantity)
    check_serials_free(session, serials)
    if sponsor_id is not None:
        sponsor = session.get(Sponsor, sponsor_id)
        if sponsor is None or sponsor.school_id not in (None, school_id):
            raise NotAllowed("other_school")
    batch = Batch(
        school_id=school_id,
        source=Source(source),
        sponsor_id=sponsor_id,
        received_on=received_on,
        quantity=quantity,
        device_type=DeviceType(device_type),
        brand_model=brand_model[:200],
        condition=condition[:200],
        handed_over=0,
        recorded_by=by,
        created_at=now,
    )
    session.add(batch)
    session.flush()
    if serials:
        # Core bulk insert: a 500-laptop batch is one statement, not 500 ORM objects.
        session.execute(Device.__table__.insert(), [{"batch_id": batch.id, "serial": s} for s in serials])
    audit_write(
        session,
        actor_id=by,
        action="create",
        entity="batch",
        entity_id=batch.id,
        before=None,
        after={
            "source": batch.source,
            "sponsor_id": sponsor_id,
            "received_on": received_on.isoformat(),
            "quantity": quantity,
            "device_type": batch.device_type,
            "brand_model": batch.brand_model,
            "condition": batch.condition,
            "serials": len(serials),
        },
        now=now,
    )
    return batch


def batches_with_devices_left(session: Session, *, school_id: int) -> list[Batch]:
    """The school's batches that still have computers to hand over, oldest receipt first."""
    return list(
        session.scalars(
            select(Batch)
            .where(Batch.school_id == school_id, Batch.handed_over < Batch.quantity)
            .order_by(Batch.received_on, Batch.id)
        )
    )


def batch_has_serials(session: Session, *, batch_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Device.batch_id == batch_id))))


def free_serials(session: Session, *, batch_id: int) -> list[str]:
    """Serials of the batch that no handover holds. A withdrawn handover keeps its device until it is
    released (device_id set to NULL), matching the unique constraint on handover.device_id."""
    held = select(Handover.device_id).where(Handover.device_id.is_not(None))
    return list(
        session.scalars(
            select(Device.serial).where(Device.batch_id == batch_id, Device.id.not_in(held)).order_by(Device.serial)
        )
    )
