"""Realistic rows for the report tests, seeded straight through the models (not through the forms).

School A (Phú Hòa 1) has students of every status, a programme batch and a sponsor's batch, three handovers
(one late for the sector database, one confirmed, one not yet due), photos and flags, and values typed by
people that look like spreadsheet formulas. School B has a little of everything. The school in the other
district carries names that must never appear in Thủ Dầu Một's reports (``OUTSIDER``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from core.programme import Programme
from core.vocabulary import FlagKind, PhotoKind, ReviewStatus, Source
from storage.db import session_scope
from storage.models import Batch, Device, Flag, Handover, HandoverPhoto, Photo, School, Sponsor, Student
from tests.factories import World

OUTSIDER = "Ngoại Phạm Vi"  # a student name only the other district has
OUTSIDER_SPONSOR = "Công ty Ngoài Quận"
INJECTIONS = {
    "full_name": '=HYPERLINK("http://evil.example","Bấm vào")',
    "guardian_name": "+84 cmd|' /C calc'!A0",
    "hardship_reason": "@SUM(1+1)*cmd|' /C calc'!A0",
    "class_name": "-5A",
    "condition": "\tĐã qua sử dụng, tốt",
    "brand_model": "\rSamsung Galaxy Tab A7",
}


@dataclass
class Seeded:
    a_students: list[int] = field(default_factory=list)
    b_students: list[int] = field(default_factory=list)
    other_students: list[int] = field(default_factory=list)
    handovers: dict[str, int] = field(default_factory=dict)  # late, confirmed, fresh, b, other
    photo_files: list[Path] = field(default_factory=list)


def _student(
    school_id: int,
    code: str,
    name: str,
    *,
    by: int,
    now: datetime,
    status=ReviewStatus.APPROVED,
    category="poor",
    need="device",
    **extra,
) -> Student:
    values = dict(
        school_id=school_id,
        code=code,
        full_name=name,
        birth_date=date(2012, 3, 9),
        gender="female",
        class_name="4A",
        category=category,
        need=need,
        guardian_name="Nguyễn Văn Ba",
        guardian_phone="+84912345678",
        status=status,
        registered_by=by,
        created_at=now,
        updated_at=now,
    )
    values.update(extra)
    return Student(**values)


def _jpeg(media_dir: Path, name: str) -> tuple[str, Path]:
    from PIL import Image

    rel = f"photos/{name[:2]}/{name}.jpg"
    path = media_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (80, 60), (200, 120, 40)).save(path, "JPEG")
    return rel, path


def seed_reports(
    engine: Engine, world: World, *, now: datetime, programme: Programme, media_dir: Path | None = None
) -> Seeded:
    out = Seeded()
    utc = UTC
    with session_scope(engine) as s:
        a, b, o = world.school_a, world.school_b, world.school_other
        ta, tb, to = world.teacher_a, world.teacher_b, world.principal_other
        students_a = [
            _student(
                a,
                "079215000001",
                "Nguyễn Thị Ánh",
                by=ta,
                now=now - timedelta(days=3),
                category="poor",
                need="device",
                class_name="4A",
            ),
            _student(
                a,
                "079215000002",
                "Trần Văn Đức",
                by=ta,
                now=now,
                category="near_poor",
                need="internet",
                gender="male",
                class_name="5B",
            ),
            _student(
                a,
                "079215000003",
                "Lê Thị Hồng Nhung",
                by=ta,
                now=now,
                category="covid_orphan",
                need="both",
                class_name="3C",
            ),
            _student(
                a,
                "079215000004",
                INJECTIONS["full_name"],
                by=ta,
                now=now,
                category="other_hardship",
                need="device",
                hardship_reason=INJECTIONS["hardship_reason"],
                guardian_name=INJECTIONS["guardian_name"],
                class_name=INJECTIONS["class_name"],
                status=ReviewStatus.WITHDRAWING,
            ),
            _student(a, "079215000005", "Phạm Văn Lợi", by=ta, now=now, status=ReviewStatus.PENDING),
            _student(
                a,
                "079215000006",
                "Võ Thị Quyên",
                by=ta,
                now=now,
                status=ReviewStatus.REJECTED,
                reject_reason="Không thuộc diện",
            ),
            _student(
                a,
                "079215000007",
                "Đỗ Minh Tâm",
                by=ta,
                now=now,
                status=ReviewStatus.WITHDRAWN,
                guardian_phone=None,
                guardian_name=None,
            ),
        ]
        students_b = [
            _student(
                b,
                "079215100001",
                "Bùi Gia Huy",
                by=tb,
                now=now,
                category="near_poor",
                need="both",
                gender="male",
                class_name="7A",
            ),
            _student(b, "079215100002", "Hoàng Thu Trang", by=tb, now=now, status=ReviewStatus.PENDING),
        ]
        students_o = [_student(o, "074215000001", OUTSIDER, by=to, now=now)]
        s.add_all(students_a + students_b + students_o)
        s.flush()
        out.a_students = [x.id for x in students_a]
        out.b_students = [x.id for x in students_b]
        out.other_students = [x.id for x in students_o]

        sponsor = Sponsor(
            name="=1+2 Công ty ABC",
            kind="business",
            contact_name="Trần Thị Bích",
            contact_phone="+84908111222",
            school_id=a,
            created_at=now,
        )
        sponsor_o = Sponsor(name=OUTSIDER_SPONSOR, kind="business", school_id=o, created_at=now)
        s.add_all([sponsor, sponsor_o])
        s.flush()
        pa = world.principal_a
        batch_prog = Batch(
            school_id=a,
            source=Source.PROGRAMME,
            received_on=date(2021, 11, 10),
            quantity=5,
            device_type="laptop",
            brand_model="Dell Latitude 3420",
            condition="Mới 100%",
            handed_over=2,
            recorded_by=pa,
            created_at=now,
        )
        batch_other = Batch(
            school_id=a,
            source=Source.OTHER,
            sponsor_id=sponsor.id,
            received_on=date(2021, 11, 12),
            quantity=3,
            device_type="tablet",
            brand_model=INJECTIONS["brand_model"],
            condition=INJECTIONS["condition"],
            handed_over=1,
            recorded_by=pa,
            created_at=now,
        )
        batch_b = Batch(
            school_id=b,
            source=Source.PROGRAMME,
            received_on=date(2021, 11, 11),
            quantity=2,
            device_type="desktop",
            brand_model="HP ProDesk",
            condition="Mới",
            handed_over=1,
            recorded_by=world.principal_b,
            created_at=now,
        )
        batch_o = Batch(
            school_id=o,
            source=Source.OTHER,
            sponsor_id=sponsor_o.id,
            received_on=date(2021, 11, 11),
            quantity=4,
            device_type="laptop",
            brand_model="Lenovo",
            condition="Mới",
            handed_over=1,
            recorded_by=to,
            created_at=now,
        )
        s.add_all([batch_prog, batch_other, batch_b, batch_o])
        s.flush()
        dev1 = Device(batch_id=batch_prog.id, serial="DL3420-0001")
        dev2 = Device(batch_id=batch_prog.id, serial="DL3420-0002")
        s.add_all([dev1, dev2])
        s.flush()

        def handover(
            student, batch, on: date, *, device=None, confirmed: datetime | None = None, school=a, by=ta
        ) -> Handover:
            h = Handover(
                student_id=student,
                batch_id=batch.id,
                device_id=device.id if device else None,
                school_id=school,
                handed_over_on=on,
                recorded_by=by,
                csdl_due_at=programme.handover_update_due(on),
                csdl_updated_at=confirmed,
                csdl_confirmed_by=pa if confirmed else None,
                created_at=now,
                updated_at=now,
            )
            s.add(h)
            s.flush()
            return h

        late = handover(students_a[0].id, batch_prog, date(2021, 11, 15), device=dev1)
        confirmed = handover(
            students_a[2].id,
            batch_prog,
            date(2021, 11, 14),
            device=dev2,
            confirmed=datetime(2021, 11, 15, 2, 30, tzinfo=utc),
        )
        fresh = handover(students_a[3].id, batch_other, date(2021, 11, 16))  # due end of 17/11: not late at 08:00
        hb = handover(students_b[0].id, batch_b, date(2021, 11, 12), school=b, by=tb)  # late
        ho = handover(students_o[0].id, batch_o, date(2021, 11, 12), school=o, by=to)
        out.handovers = {"late": late.id, "confirmed": confirmed.id, "fresh": fresh.id, "b": hb.id, "other": ho.id}

        photos = []
        for i, name in enumerate(["aa11", "bb22", "cc33"]):
            rel = f"photos/{name[:2]}/{name}.jpg"
            if media_dir is not None:
                rel, path = _jpeg(media_dir, name)
                out.photo_files.append(path)
            photos.append(
                Photo(
                    sha256=name * 16,
                    dhash=i + 1,
                    path=rel,
                    thumb_path=rel.replace("photos", "thumbs"),
                    width=80,
                    height=60,
                    size_bytes=1000,
                    created_at=now,
                )
            )
        s.add_all(photos)
        s.flush()
        s.add_all(
            [
                HandoverPhoto(handover_id=late.id, photo_id=photos[0].id, kind=PhotoKind.SCENE),
                HandoverPhoto(handover_id=late.id, photo_id=photos[1].id, kind=PhotoKind.MINUTES),
                # the same photo for a second handover: flagged
                HandoverPhoto(handover_id=confirmed.id, photo_id=photos[0].id, kind=PhotoKind.SCENE),
                HandoverPhoto(handover_id=ho.id, photo_id=photos[2].id, kind=PhotoKind.SCENE),
            ]
        )
        s.add_all(
            [
                Flag(
                    handover_id=confirmed.id,
                    school_id=a,
                    kind=FlagKind.PHOTO_REUSED,
                    params={"text": "same photo"},
                    related_handover_id=late.id,
                    created_at=now,
                ),
                Flag(
                    handover_id=late.id,
                    school_id=a,
                    kind=FlagKind.CAPTURE_TIME,
                    params={"text": "old photo"},
                    created_at=now,
                    resolved_at=now,
                ),
                Flag(
                    handover_id=ho.id, school_id=o, kind=FlagKind.CAPTURE_TIME, params={"text": "old"}, created_at=now
                ),
            ]
        )
        school_b = s.get(School, b)
        school_b.needs_report_submitted_at = datetime(2021, 11, 16, 3, 0, tzinfo=utc)
    return out
